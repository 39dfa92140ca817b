/* libFuzzer target: Consul JSON service definitions (services_dir *.json
 * and PUT /v1/agent/service/register bodies). */
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct conf_service *svcs = NULL;
	size_t n = 0;
	char err[CONF_ERR_MAX];

	if (conf_parse_service_json((const char *)data, len, "fuzz", &svcs,
	    &n, err, sizeof(err)) == 0)
		conf_services_free(svcs, n);
	return 0;
}
