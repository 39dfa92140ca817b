/* spiffe: parse and format the SPIFFE IDs of mesh services. */
#include "helperd/model/spiffe.h"

#include <stdio.h>
#include <string.h>

#include "common/util.h"

#define SPIFFE_SCHEME "spiffe://"

static int
is_alnum(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

/* Validate n bytes of s as a name (see spiffe_valid_name). */
static int
valid_name_n(const char *s, size_t n)
{
	if (n == 0 || n > 63 || !is_alnum((unsigned char)s[0]))
		return 0;
	for (size_t i = 1; i < n; i++) {
		int c = (unsigned char)s[i];

		if (!is_alnum(c) && c != '-' && c != '_')
			return 0;
	}
	return 1;
}

int
spiffe_valid_name(const char *s)
{
	return s != NULL && valid_name_n(s, strnlen(s, 64));
}

/* Validate n bytes of td as a trust domain. */
static int
valid_td_n(const char *td, size_t n)
{
	size_t label = 0;

	if (n == 0 || n > 127)
		return 0;
	for (size_t i = 0; i <= n; i++) {
		int c = i < n ? (unsigned char)td[i] : '.';

		if (c == '.') {
			if (label == 0 || td[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-'))
			return 0;
		if (label == 0 && c == '-')
			return 0;
		if (++label > 63)
			return 0;
	}
	return 1;
}

int
spiffe_valid_trust_domain(const char *td)
{
	return td != NULL && valid_td_n(td, strnlen(td, 128));
}

/* Expect "/<key>/<value>" at *pp; copy the value into out. 0/-1. */
static int
take_segment(const char **pp, const char *key, char *out, size_t outlen)
{
	const char *p = *pp, *v, *end;
	size_t klen = strlen(key);

	if (p[0] != '/' || strncmp(p + 1, key, klen) != 0 || p[1 + klen] != '/')
		return -1;
	v = p + 2 + klen;
	end = strchr(v, '/');
	if (end == NULL)
		end = v + strlen(v);
	if (!valid_name_n(v, (size_t)(end - v)) || (size_t)(end - v) >= outlen)
		return -1;
	memcpy(out, v, (size_t)(end - v));
	out[end - v] = '\0';
	*pp = end;
	return 0;
}

int
spiffe_parse(const char *uri, struct spiffe_id *out)
{
	struct spiffe_id id;
	const char *td, *p;
	size_t tdlen;

	if (uri == NULL || strnlen(uri, SPIFFE_ID_MAX) >= SPIFFE_ID_MAX)
		return -1;
	if (strncmp(uri, SPIFFE_SCHEME, strlen(SPIFFE_SCHEME)) != 0)
		return -1;
	td = uri + strlen(SPIFFE_SCHEME);
	p = strchr(td, '/');
	if (p == NULL)
		return -1;
	tdlen = (size_t)(p - td);
	/* Lowercase DNS labels only: this also rejects a port (':'),
	 * userinfo ('@'), uppercase and percent-encoding. */
	if (!valid_td_n(td, tdlen) || tdlen >= sizeof(id.trust_domain))
		return -1;
	memcpy(id.trust_domain, td, tdlen);
	id.trust_domain[tdlen] = '\0';
	/* Names cannot hold '?', '#', '%', '.', so a query, a fragment,
	 * escapes and dot segments all fail in take_segment. */
	if (take_segment(&p, "ns", id.ns, sizeof(id.ns)) != 0 ||
	    take_segment(&p, "dc", id.dc, sizeof(id.dc)) != 0 ||
	    take_segment(&p, "svc", id.service, sizeof(id.service)) != 0)
		return -1;
	if (*p != '\0')
		return -1;
	if (out != NULL)
		*out = id;
	return 0;
}

int
spiffe_format(char *buf, size_t len, const char *td, const char *dc,
    const char *service)
{
	int n;

	if (!spiffe_valid_trust_domain(td) || !spiffe_valid_name(dc) ||
	    !spiffe_valid_name(service))
		return -1;
	n = snprintf(buf, len, SPIFFE_SCHEME "%s/ns/default/dc/%s/svc/%s",
	    td, dc, service);
	if (n < 0 || (size_t)n >= len || (size_t)n >= SPIFFE_ID_MAX)
		return -1;
	return 0;
}
