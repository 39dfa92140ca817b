/* owner: the uid, process and systemd unit behind a loopback TCP peer
 * (see owner.h). */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "helperd/local/owner.h"
#include "helperd/evloop/sockdiag.h"

#define OWNER_FDS_MAX   65536   /* fds looked at per process */

static void
to_diag(const struct sockaddr_storage *ss, struct in6_addr *a, uint16_t *port)
{
	memset(a, 0, sizeof(*a));
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;

		a->s6_addr[10] = 0xff;
		a->s6_addr[11] = 0xff;
		memcpy(&a->s6_addr[12], &in->sin_addr, 4);
		*port = ntohs(in->sin_port);
	} else {
		const struct sockaddr_in6 *in6 =
		    (const struct sockaddr_in6 *)ss;

		*a = in6->sin6_addr;
		*port = ntohs(in6->sin6_port);
	}
}

int
owner_socket(struct sockdiag *sd, const struct sockaddr_storage *peer,
    const struct sockaddr_storage *local, struct owner *o)
{
	struct sockdiag_id id;
	struct sockdiag_info info;

	memset(o, 0, sizeof(*o));
	memset(&id, 0, sizeof(id));
	/* The app's socket, seen from its side. */
	to_diag(peer, &id.src, &id.sport);
	to_diag(local, &id.dst, &id.dport);
	id.cookie = SOCKDIAG_NOCOOKIE;
	if (sockdiag_query(sd, &id, &info) != 0)
		return -1;
	if (info.inode == 0) {
		errno = ENOENT;
		return -1;
	}
	o->uid = info.uid;
	o->inode = info.inode;
	return 0;
}

/* Does pid hold socket:[inode]? */
static int
holds(pid_t pid, const char *want)
{
	char dir[64], path[sizeof(dir) + 256 + 2], link[64];
	struct dirent *e;
	DIR *d;
	int found = 0, n = 0;

	snprintf(dir, sizeof(dir), "/proc/%ld/fd", (long)pid);
	if ((d = opendir(dir)) == NULL)
		return 0;
	while (!found && n++ < OWNER_FDS_MAX && (e = readdir(d)) != NULL) {
		ssize_t l;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		l = readlink(path, link, sizeof(link) - 1);
		if (l <= 0)
			continue;
		link[l] = '\0';
		found = strcmp(link, want) == 0;
	}
	closedir(d);
	return found;
}

/* Search /proc for the holder: pass 0 looks only at processes whose
 * /proc entry belongs to uid, pass 1 at the others (a setuid or
 * non-dumpable process's entry belongs to root). */
static pid_t
search(uid_t uid, const char *want)
{
	for (int pass = 0; pass < 2; pass++) {
		DIR *d = opendir("/proc");
		struct dirent *e;
		pid_t found = 0;

		if (d == NULL)
			return 0;
		while (found == 0 && (e = readdir(d)) != NULL) {
			char p[64];
			struct stat st;
			long pid;

			if (!isdigit((unsigned char)e->d_name[0]) ||
			    util_parse_long(e->d_name, 1, 0x7fffffff,
			    &pid) != 0)
				continue;
			snprintf(p, sizeof(p), "/proc/%ld", pid);
			if (stat(p, &st) != 0 || (st.st_uid == uid) != !pass)
				continue;
			if (holds((pid_t)pid, want))
				found = (pid_t)pid;
		}
		closedir(d);
		if (found != 0)
			return found;
	}
	return 0;
}

static void
read_comm(pid_t pid, char *buf, size_t len)
{
	char p[64];
	FILE *f;

	buf[0] = '\0';
	snprintf(p, sizeof(p), "/proc/%ld/comm", (long)pid);
	if ((f = fopen(p, "re")) == NULL)
		return;
	if (fgets(buf, (int)len, f) == NULL)
		buf[0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	fclose(f);
}

int
owner_unit(pid_t pid, char *unit, size_t len)
{
	char p[64], line[1024];
	FILE *f;
	int rc = -1;

	unit[0] = '\0';
	snprintf(p, sizeof(p), "/proc/%ld/cgroup", (long)pid);
	if ((f = fopen(p, "re")) == NULL)
		return -1;
	/* "0::/system.slice/billing.service" (unified) or
	 * "1:name=systemd:/system.slice/billing.service" (v1). */
	while (rc != 0 && fgets(line, sizeof(line), f) != NULL) {
		char *path = strchr(line, ':'), *c, *best = NULL;
		size_t bl = 0;

		if (path == NULL || (path = strchr(path + 1, ':')) == NULL)
			continue;
		*path++ = '\0';
		if (strcmp(line, "0:") != 0 && strstr(line, ":name=systemd") ==
		    NULL)
			continue;
		path[strcspn(path, "\n")] = '\0';
		for (c = strtok_r(path, "/", &path); c != NULL;
		    c = strtok_r(NULL, "/", &path)) {
			size_t n = strlen(c);

			if ((n > 8 && strcmp(c + n - 8, ".service") == 0) ||
			    (n > 6 && strcmp(c + n - 6, ".scope") == 0)) {
				best = c;
				bl = n;
			}
		}
		if (best != NULL && bl < len) {
			memcpy(unit, best, bl + 1);
			rc = 0;
		}
	}
	fclose(f);
	return rc;
}

void
owner_unit_or_cgroup(pid_t pid, char *buf, size_t len)
{
	char p[64], text[4096], *line, *next, *cg = NULL;
	ssize_t n;
	int fd;

	if (len == 0)
		return;
	buf[0] = '\0';
	if (pid <= 0)
		return;
	snprintf(p, sizeof(p), "/proc/%ld/cgroup", (long)pid);
	if ((fd = open(p, O_RDONLY | O_CLOEXEC)) < 0)
		return;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return;
	text[n] = '\0';
	/* cgroup v2 ("0::/path") wins; v1's name=systemd otherwise. */
	for (line = text; line != NULL && *line != '\0'; line = next) {
		char *path;

		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if ((path = strchr(line, ':')) == NULL ||
		    (path = strchr(path + 1, ':')) == NULL)
			continue;
		path++;
		if (strncmp(line, "0::", 3) == 0) {
			cg = path;
			break;
		}
		if (cg == NULL && strstr(line, ":name=systemd:") != NULL)
			cg = path;
	}
	if (cg == NULL)
		return;
	util_strlcpy(buf, cg, len);
	for (char *tok = strtok_r(cg, "/", &cg); tok != NULL;
	    tok = strtok_r(NULL, "/", &cg)) {
		size_t tl = strlen(tok);

		if ((tl > 8 && strcmp(tok + tl - 8, ".service") == 0) ||
		    (tl > 6 && strcmp(tok + tl - 6, ".scope") == 0))
			util_strlcpy(buf, tok, len);
	}
}

int
owner_process(struct owner *o, pid_t hint)
{
	char want[48];

	snprintf(want, sizeof(want), "socket:[%lu]", o->inode);
	o->pid = 0;
	if (hint > 0 && holds(hint, want))
		o->pid = hint;
	else
		o->pid = search(o->uid, want);
	if (o->pid == 0)
		return -1;
	read_comm(o->pid, o->comm, sizeof(o->comm));
	(void)owner_unit(o->pid, o->unit, sizeof(o->unit));
	return 0;
}
