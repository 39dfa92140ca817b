/* libFuzzer target: mesh.conf (libconfig syntax) through the one
 * validating table, as helperd -check reads it. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "conf/conf.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static char path[64];
	struct conf c;
	char err[CONF_ERR_MAX];
	FILE *f;

	if (path[0] == '\0')
		snprintf(path, sizeof(path), "/tmp/fuzz-mesh-%ld.conf",
		    (long)getpid());
	if ((f = fopen(path, "w")) == NULL)
		return 0;
	fwrite(data, 1, len, f);
	fclose(f);
	conf_defaults(&c, 0);
	conf_load(&c, path, err, sizeof(err));
	conf_free(&c);
	return 0;
}
