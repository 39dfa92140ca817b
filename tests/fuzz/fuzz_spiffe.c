/* libFuzzer target: SPIFFE IDs (from peer certificates and the
 * authorize API) and SNI names. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "helperd/model/spiffe.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	char s[512], back[SPIFFE_ID_MAX];
	struct spiffe_id id;

	if (len >= sizeof(s))
		return 0;
	memcpy(s, data, len);
	s[len] = '\0';
	if (spiffe_parse(s, &id) == 0 && strcmp(id.ns, "default") == 0) {
		/* What parses must format back to itself (spiffe_format
		 * writes the default namespace, the only one the mesh has;
		 * other namespaces parse, and are refused by cert_verify_peer
		 * and the authorize API). */
		if (spiffe_format(back, sizeof(back), id.trust_domain, id.dc,
		    id.service) != 0 || strcmp(back, s) != 0)
			__builtin_trap();
	}
	return 0;
}
