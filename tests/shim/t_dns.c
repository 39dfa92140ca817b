/* <service>.service.<domain> names: getaddrinfo answers from 127.77.0.0/16
 * (v4-mapped for AF_INET6), a connect to that address goes to the
 * service, getpeername shows it, AI_CANONNAME is the name, freeaddrinfo
 * frees it, gethostbyname/gethostbyname_r/gethostbyname2 agree, other
 * names go to libc. MESH_TEST_DEST [socat] is the service. */
#include "shimtest.h"
#include <netdb.h>

int
main(int argc, char **argv)
{
	const char *dest = getenv("MESH_TEST_DEST");
	char name[128], port[16], buf[128], hbuf[1024], a1[64];
	struct addrinfo hints, *res = NULL, *ai;
	struct hostent he, *hp;
	int r, fd, herr, i;

	st_init(argc, argv);
	if (!st_shim()) {
		printf("SKIP %s: names are answered by the shim only\n",
		    st_prog);
		return st_done();
	}
	if (dest == NULL || !dest[0])
		dest = "socat";
	snprintf(name, sizeof(name), "%s.service.mesh", dest);
	snprintf(port, sizeof(port), "%d", st_echo());

	for (i = 0; i < 2; i++) {
		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_CANONNAME | AI_ADDRCONFIG;
		r = getaddrinfo(i ? "SOCAT.Service.Mesh." : name, port,
		    &hints, &res);
		if (i == 1 && strcmp(dest, "socat") != 0) {
			if (r == 0)
				freeaddrinfo(res);
			break;
		}
		CHECK(r == 0 && res != NULL, i ? "getaddrinfo, any case, "
		    "trailing dot" : "getaddrinfo", "%s", gai_strerror(r));
		if (r != 0)
			return st_done();
		ai = res;
		st_fmt(ai->ai_addr, a1, sizeof(a1));
		CHECK(ai->ai_family == AF_INET && ai->ai_next == NULL &&
		    (ntohl(((struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr)
		    >> 16) == 0x7f4d && ntohs(((struct sockaddr_in *)
		    ai->ai_addr)->sin_port) == st_echo(),
		    "one address in 127.77/16 with the port", "got %s", a1);
		CHECK(ai->ai_canonname != NULL && strcasecmp(ai->ai_canonname,
		    i ? "SOCAT.Service.Mesh." : name) == 0,
		    "AI_CANONNAME is the name", "got %s",
		    ai->ai_canonname ? ai->ai_canonname : "(null)");
		fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		r = connect(fd, ai->ai_addr, ai->ai_addrlen);
		CHECK(r == 0 && st_echo_ok(fd, "dns") == 0,
		    "connect by name, echo", "%s", strerror(errno));
		{
			char *h = a1, *c = strrchr(a1, ':');
			*c = '\0';
			CHECK(st_peer_is(fd, h, st_echo(), buf,
			    sizeof(buf)) == 0, "getpeername shows the name's "
			    "address", "got %s", buf);
		}
		close(fd);
		freeaddrinfo(res);
	}

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_INET6;
	hints.ai_socktype = SOCK_STREAM;
	r = getaddrinfo(name, port, &hints, &res);
	CHECK(r == 0 && res->ai_family == AF_INET6 &&
	    IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)res->ai_addr)->
	    sin6_addr), "AF_INET6: v4-mapped", "%s", gai_strerror(r));
	if (r == 0) {
		fd = socket(AF_INET6, SOCK_STREAM, 0);
		r = connect(fd, res->ai_addr, res->ai_addrlen);
		CHECK(r == 0 && st_echo_ok(fd, "dns6") == 0,
		    "AF_INET6 connect by name", "%s", strerror(errno));
		close(fd);
		freeaddrinfo(res);
	}

	hp = gethostbyname(name);
	CHECK(hp != NULL && hp->h_addrtype == AF_INET && hp->h_length == 4 &&
	    (unsigned char)hp->h_addr_list[0][0] == 127 &&
	    (unsigned char)hp->h_addr_list[0][1] == 77 &&
	    hp->h_addr_list[1] == NULL && strcmp(hp->h_name, name) == 0,
	    "gethostbyname", "bad hostent");
	r = gethostbyname_r(name, &he, hbuf, sizeof(hbuf), &hp, &herr);
	CHECK(r == 0 && hp == &he && (unsigned char)he.h_addr_list[0][1] ==
	    77, "gethostbyname_r", "r=%d", r);
	r = gethostbyname_r(name, &he, hbuf, 8, &hp, &herr);
	CHECK(r == ERANGE && hp == NULL, "gethostbyname_r small buffer ERANGE",
	    "r=%d", r);
	hp = gethostbyname2(name, AF_INET6);
	CHECK(hp != NULL && hp->h_length == 16 &&
	    IN6_IS_ADDR_V4MAPPED((struct in6_addr *)hp->h_addr_list[0]),
	    "gethostbyname2 AF_INET6", "bad");

	/* other names are libc's */
	r = getaddrinfo("localhost", "80", NULL, &res);
	CHECK(r == 0, "localhost still resolves", "%s", gai_strerror(r));
	if (r == 0)
		freeaddrinfo(res);
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_NUMERICHOST;
	r = getaddrinfo(name, "80", &hints, &res);
	CHECK(r != 0, "AI_NUMERICHOST is not answered", "r=%d", r);
	r = getaddrinfo("x.service.otherdomain.invalid", "80", &hints, &res);
	CHECK(r != 0, "other domain not answered", "r=%d", r);
	return st_done();
}
