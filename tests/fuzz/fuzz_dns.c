/* libFuzzer target: a UDP datagram to helperd's DNS server. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "helperd/local/dns.h"

static int
lookup(void *arg, const char *svc, uint32_t *addr, int *port)
{
	(void)arg;
	if (strcmp(svc, "socat") != 0 && strcmp(svc, "web") != 0)
		return 0;
	*addr = 0x7f4e0002u;
	*port = svc[0] == 's' ? 9191 : 0;
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	uint8_t resp[DNS_MSG_MAX];
	size_t rlen = 0;

	if (dns_answer(data, len, "mesh", lookup, NULL, resp, &rlen) == 0 &&
	    (rlen < 12 || rlen > sizeof(resp)))
		__builtin_trap();
	return 0;
}
