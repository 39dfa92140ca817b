/* libFuzzer target: intention objects as POSTed to the API. */
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "helperd/model/intent.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct intent in;
	char why[256];
	json_t *j = json_loadb((const char *)data, len, 0, NULL);

	if (j == NULL)
		return 0;
	if (intent_from_json(j, &in, why, sizeof(why)) == 0) {
		json_t *back = intent_to_json(&in);
		json_decref(back);
		intent_clear(&in);
	}
	json_decref(j);
	return 0;
}
