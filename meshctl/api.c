/* api: libcurl client for helperd's HTTP API. */
#include "meshctl/api.h"
#include "meshctl/meshctl.h"

#include <curl/curl.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#define API_DEFAULT_ADDR "127.0.0.1:8500"

static CURL *api_curl;
static char api_tok[160];
static int api_tok_done;
static char api_sock[108];          /* helperd's unix socket, once found */
static int api_sock_done;
static int api_in_discovery;

static int api_perform(const char *method, const char *path,
    const char *body, struct api_resp *resp, int quiet);

/* The first of: -token, $MESH_HTTP_TOKEN, $CONSUL_HTTP_TOKEN, the file
 * of -token-file, $MESH_HTTP_TOKEN_FILE, $CONSUL_HTTP_TOKEN_FILE. */
const char *
api_token(void)
{
	const char *v[] = { mc_token, getenv("MESH_HTTP_TOKEN"),
	    getenv("CONSUL_HTTP_TOKEN") };
	const char *f[] = { mc_token_file, getenv("MESH_HTTP_TOKEN_FILE"),
	    getenv("CONSUL_HTTP_TOKEN_FILE") };
	const char *src = NULL;

	if (api_tok_done)
		return api_tok[0] != '\0' ? api_tok : NULL;
	api_tok_done = 1;
	for (size_t i = 0; i < 3 && src == NULL; i++)
		if (v[i] != NULL && v[i][0] != '\0')
			src = v[i];
	if (src != NULL) {
		snprintf(api_tok, sizeof(api_tok), "%s", src);
	} else {
		for (size_t i = 0; i < 3; i++) {
			FILE *fp;

			if (f[i] == NULL || f[i][0] == '\0')
				continue;
			if ((fp = fopen(f[i], "r")) == NULL) {
				fprintf(stderr, "Error: token file %s: %s\n",
				    f[i], strerror(errno));
				break;
			}
			if (fgets(api_tok, sizeof(api_tok), fp) == NULL)
				api_tok[0] = '\0';
			fclose(fp);
			break;
		}
	}
	api_tok[strcspn(api_tok, " \t\r\n")] = '\0';
	for (char *p = api_tok; *p != '\0'; p++)
		if (!isprint((unsigned char)*p)) {
			fprintf(stderr, "Error: the ACL token holds a "
			    "non-printable character; ignored\n");
			api_tok[0] = '\0';
			break;
		}
	return api_tok[0] != '\0' ? api_tok : NULL;
}

/* A unix socket we may use: a socket, owned by root or by us. */
/* Whose socket meshctl trusts to be helperd's: root's, the caller's own,
 * or the packaged daemon's system user "meshshim" (helperd.service runs
 * as it); never another ordinary user's. */
static int
socket_owner_trusted(uid_t uid)
{
	struct passwd *pw;

	if (uid == 0 || uid == geteuid())
		return 1;
	pw = getpwnam("meshshim");
	return pw != NULL && pw->pw_uid == uid;
}

int
api_socket_trusted(const char *path, char *why, size_t whylen)
{
	struct stat st;

	if (path == NULL || path[0] != '/') {
		snprintf(why, whylen, "not an absolute path");
		return 0;
	}
	if (stat(path, &st) != 0) {
		snprintf(why, whylen, "%s", strerror(errno));
		return 0;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(why, whylen, "not a socket");
		return 0;
	}
	if (!socket_owner_trusted(st.st_uid)) {
		snprintf(why, whylen, "owned by uid %ld, neither root, you nor "
		    "the meshshim user: not trusted to be helperd's",
		    (long)st.st_uid);
		return 0;
	}
	return 1;
}

static int
socket_usable(const char *path)
{
	struct stat st;

	return path != NULL && path[0] == '/' && strlen(path) < sizeof(api_sock)
	    && stat(path, &st) == 0 && S_ISSOCK(st.st_mode) &&
	    socket_owner_trusted(st.st_uid) && access(path, W_OK) == 0;
}

/* Without a token, a request goes to helperd's unix socket when this
 * user can reach it: the kernel tells helperd who we are, and root (or
 * a service's user) needs no token. Its path: $MESH_HTTP_SOCKET, else
 * what helperd at the TCP address says (/v1/agent/self). */
static const char *
api_socket(const char *addr)
{
	const char *env = getenv("MESH_HTTP_SOCKET");
	struct api_resp r;
	json_t *j;

	if (api_sock_done)
		return api_sock[0] != '\0' ? api_sock : NULL;
	api_sock_done = 1;
	if (env != NULL && env[0] != '\0') {
		if (socket_usable(env))
			snprintf(api_sock, sizeof(api_sock), "%s", env);
		return api_sock[0] != '\0' ? api_sock : NULL;
	}
	if (strncmp(addr, "127.", 4) != 0 && strncmp(addr, "localhost", 9) &&
	    strncmp(addr, "http://127.", 11) != 0 &&
	    strncmp(addr, "http://localhost", 16) != 0 &&
	    strncmp(addr, "[::1]", 5) != 0)
		return NULL;
	api_in_discovery = 1;
	if (api_perform("GET", "/v1/agent/self", NULL, &r, 1) == 0) {
		if (r.status == 200 && (j = json_loadb(r.body, r.len, 0,
		    NULL)) != NULL) {
			const char *p = json_string_value(json_object_get(
			    json_object_get(j, "Config"), "HTTPSocket"));

			if (socket_usable(p))
				snprintf(api_sock, sizeof(api_sock), "%s", p);
			json_decref(j);
		}
		api_resp_free(&r);
	}
	api_in_discovery = 0;
	return api_sock[0] != '\0' ? api_sock : NULL;
}

const char *
api_addr(void)
{
	const char *a = mc_http_addr;

	if (a == NULL || a[0] == '\0')
		a = getenv("MESH_HTTP_ADDR");
	if (a == NULL || a[0] == '\0')
		a = getenv("CONSUL_HTTP_ADDR");
	if (a == NULL || a[0] == '\0')
		a = API_DEFAULT_ADDR;
	return a;
}

struct sink {
	char *buf;
	size_t len, cap;
	int overflow;
};

static size_t
api_write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct sink *s = arg;
	size_t n = size * nmemb;

	if (n > API_BODY_MAX - s->len) {
		s->overflow = 1;
		return 0;
	}
	if (s->len + n + 1 > s->cap) {
		size_t ncap = s->cap ? s->cap : 4096;
		char *nb;
		while (ncap < s->len + n + 1)
			ncap *= 2;
		nb = realloc(s->buf, ncap);
		if (nb == NULL)
			return 0;
		s->buf = nb;
		s->cap = ncap;
	}
	memcpy(s->buf + s->len, data, n);
	s->len += n;
	s->buf[s->len] = '\0';
	return n;
}

/* Streaming (api_stream): a 200 answer goes to stdout as it arrives;
 * any other is kept for the error message. */
static int api_streaming;

static size_t
api_stream_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	long code = 0;

	curl_easy_getinfo(api_curl, CURLINFO_RESPONSE_CODE, &code);
	if (code != 200)
		return api_write_cb(data, size, nmemb, arg);
	if (fwrite(data, size, nmemb, stdout) != nmemb)
		return 0;
	fflush(stdout);
	return size * nmemb;
}

int
api_stream(const char *path, struct api_resp *resp)
{
	int rc;

	api_streaming = 1;
	rc = api_request("GET", path, NULL, resp);
	api_streaming = 0;
	return rc;
}

/* Build the URL for path; sets the unix socket option when needed. */
static char *
api_url(CURL *c, const char *addr, const char *path)
{
	char *url = NULL;
	int rc;

	if (strncmp(addr, "unix://", 7) == 0) {
		if (curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, addr + 7) !=
		    CURLE_OK)
			return NULL;
		rc = asprintf(&url, "http://localhost%s", path);
	} else if (strncmp(addr, "http://", 7) == 0 ||
	    strncmp(addr, "https://", 8) == 0) {
		size_t n = strlen(addr);
		while (n > 0 && addr[n - 1] == '/')
			n--;
		rc = asprintf(&url, "%.*s%s", (int)n, addr, path);
	} else {
		rc = asprintf(&url, "http://%s%s", addr, path);
	}
	return rc < 0 ? NULL : url;
}

int
api_request(const char *method, const char *path, const char *body,
    struct api_resp *resp)
{
	return api_perform(method, path, body, resp, 0);
}

/* The request's headers: Accept, the token, the body's Content-Type. */
static struct curl_slist *
api_headers(const char *tok, const char *body, const char *method)
{
	struct curl_slist *hdrs = NULL, *h2;
	char tokhdr[200];
	const char *ctype = NULL;

	if ((hdrs = curl_slist_append(NULL, "Accept: application/json")) ==
	    NULL)
		return NULL;
	if (tok != NULL) {
		snprintf(tokhdr, sizeof(tokhdr), "X-Consul-Token: %s", tok);
		if ((h2 = curl_slist_append(hdrs, tokhdr)) == NULL)
			goto fail;
		hdrs = h2;
	}
	if (body != NULL)
		ctype = "Content-Type: application/json";
	else if (strcmp(method, "PUT") == 0 || strcmp(method, "POST") == 0)
		ctype = "Content-Type:";        /* no form-urlencoded claim */
	if (ctype != NULL) {
		if ((h2 = curl_slist_append(hdrs, ctype)) == NULL)
			goto fail;
		hdrs = h2;
	}
	return hdrs;
fail:
	curl_slist_free_all(hdrs);
	return NULL;
}

/* Every option of one request on api_curl. */
static void
api_setopts(const char *method, const char *url, struct curl_slist *hdrs,
    const char *body, int stream, char *errbuf, struct sink *s)
{
	curl_easy_setopt(api_curl, CURLOPT_URL, url);
	curl_easy_setopt(api_curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(api_curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(api_curl, CURLOPT_USERAGENT,
	    "meshctl/" MESHCTL_VERSION);
	curl_easy_setopt(api_curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(api_curl, CURLOPT_TIMEOUT_MS, stream ? 0L :
	    30000L);
	curl_easy_setopt(api_curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(api_curl, CURLOPT_PROXY, "");    /* never via proxy */
	curl_easy_setopt(api_curl, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(api_curl, CURLOPT_WRITEFUNCTION, stream ?
	    api_stream_cb : api_write_cb);
	curl_easy_setopt(api_curl, CURLOPT_WRITEDATA, s);
	if (body != NULL || strcmp(method, "PUT") == 0 ||
	    strcmp(method, "POST") == 0) {
		curl_easy_setopt(api_curl, CURLOPT_POSTFIELDS, body != NULL ?
		    body : "");
		curl_easy_setopt(api_curl, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)(body != NULL ? strlen(body) : 0));
	}
}

/* Why a request got no answer, as the user should read it. */
static const char *
api_why(CURLcode cc, const char *errbuf, const struct sink *s)
{
	long oserr = 0;

	if (s->overflow)
		return "response too large";
	if (cc == CURLE_COULDNT_CONNECT && curl_easy_getinfo(api_curl,
	    CURLINFO_OS_ERRNO, &oserr) == CURLE_OK && oserr != 0)
		return strerror((int)oserr);
	return errbuf[0] != '\0' ? errbuf : curl_easy_strerror(cc);
}

static int
api_perform(const char *method, const char *path, const char *body,
    struct api_resp *resp, int quiet)
{
	const char *addr = api_addr(), *tok = NULL, *sock = NULL;
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL;
	struct sink s = { 0 };
	char *url = NULL;
	CURLcode cc;
	/* The discovery of the unix socket is never the stream itself. */
	int stream = api_streaming && !api_in_discovery;

	memset(resp, 0, sizeof(*resp));
	if (strpbrk(addr, " \t\r\n") != NULL) {
		fprintf(stderr, "Error: invalid HTTP address \"%s\"\n", addr);
		return -1;
	}
	/* First (it may ask helperd itself): token or unix socket? */
	if (!api_in_discovery && (tok = api_token()) == NULL &&
	    strncmp(addr, "unix://", 7) != 0)
		sock = api_socket(addr);
	if (api_curl == NULL) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 ||
		    (api_curl = curl_easy_init()) == NULL) {
			fprintf(stderr, "Error: cannot initialise libcurl\n");
			return -1;
		}
	} else {
		curl_easy_reset(api_curl);
	}
	if (sock != NULL) {
		if (curl_easy_setopt(api_curl, CURLOPT_UNIX_SOCKET_PATH, sock)
		    != CURLE_OK || asprintf(&url, "http://localhost%s", path) < 0)
			url = NULL;
	} else {
		url = api_url(api_curl, addr, path);
	}
	if (url == NULL || (hdrs = api_headers(tok, body, method)) == NULL) {
		free(url);
		fprintf(stderr, "Error: out of memory\n");
		return -1;
	}
	api_setopts(method, url, hdrs, body, stream, errbuf, &s);
	cc = curl_easy_perform(api_curl);
	curl_slist_free_all(hdrs);
	free(url);
	if (cc != CURLE_OK) {
		if (!quiet)
			fprintf(stderr, "Error: cannot reach helperd at %s: "
			    "%s\n", sock != NULL ? sock : addr,
			    api_why(cc, errbuf, &s));
		free(s.buf);
		return -1;
	}
	curl_easy_getinfo(api_curl, CURLINFO_RESPONSE_CODE, &resp->status);
	if (s.buf == NULL && (s.buf = calloc(1, 1)) == NULL) {
		fprintf(stderr, "Error: out of memory\n");
		return -1;
	}
	resp->body = s.buf;
	resp->len = s.len;
	return 0;
}

void
api_resp_free(struct api_resp *resp)
{
	free(resp->body);
	resp->body = NULL;
	resp->len = 0;
}

const char *
api_errtext(struct api_resp *resp)
{
	static char buf[32];
	size_t n = resp->body != NULL ? strlen(resp->body) : 0;

	while (n > 0 && (resp->body[n - 1] == '\n' ||
	    resp->body[n - 1] == '\r' || resp->body[n - 1] == ' ' ||
	    resp->body[n - 1] == '\t'))
		resp->body[--n] = '\0';
	if (n == 0) {
		snprintf(buf, sizeof(buf), "HTTP %ld", resp->status);
		return buf;
	}
	return resp->body;
}

json_t *
api_json(const struct api_resp *resp, const char *what)
{
	json_error_t je;
	json_t *j = json_loadb(resp->body, resp->len, JSON_DECODE_ANY, &je);

	if (j == NULL)
		fprintf(stderr, "Error %s: malformed response from helperd: "
		    "%s\n", what, je.text);
	return j;
}

char *
api_escape(const char *s)
{
	char *e, *out;

	if (api_curl == NULL) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 ||
		    (api_curl = curl_easy_init()) == NULL)
			return NULL;
	}
	e = curl_easy_escape(api_curl, s, 0);
	if (e == NULL)
		return NULL;
	out = strdup(e);
	curl_free(e);
	return out;
}

void
api_cleanup(void)
{
	if (api_curl != NULL) {
		curl_easy_cleanup(api_curl);
		curl_global_cleanup();
		api_curl = NULL;
	}
}
