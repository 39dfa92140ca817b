/* cmd_systemd: "meshctl systemd enable|disable UNIT": put an existing
 * systemd service in the mesh with a drop-in (LD_PRELOAD of the installed
 * shim, MESH_SERVICE), or take it out again. Local files only: no API. */
#include "meshctl/meshctl.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define UNIT_NAME_MAX 255           /* systemd's limit */
#define DROPIN_NAME "meshshim.conf"

static const char *s_unit_dir = "/etc/systemd/system";
static const char *s_service;
static const char *s_shim = MESHSHIM_SHIM_PATH;
static const char *s_socket;

static const struct flag enable_flags[] = {
	{ "service", FLAG_STRING, &s_service, "<name>",
	    "The mesh service the unit's processes act as (MESH_SERVICE). "
	    "Defaults to the unit's name without \".service\"." },
	{ "socket", FLAG_STRING, &s_socket, "<path>",
	    "helperd's control socket, when not the default "
	    "(MESH_SOCKET)." },
	{ "shim", FLAG_STRING, &s_shim, "<path>",
	    "The shim to preload [" MESHSHIM_SHIM_PATH "]." },
	{ "unit-dir", FLAG_STRING, &s_unit_dir, "<dir>",
	    "Where drop-in directories go [/etc/systemd/system]." },
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct flag disable_flags[] = {
	{ "unit-dir", FLAG_STRING, &s_unit_dir, "<dir>",
	    "Where drop-in directories go [/etc/systemd/system]." },
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cmd_help enable_help = {
	"systemd enable",
	"systemd enable [options] <unit>",
	"Put an existing systemd service in the mesh without editing it: "
	"writes the drop-in <unit-dir>/<unit>.d/" DROPIN_NAME " that preloads "
	"the shim (LD_PRELOAD) and names the service (MESH_SERVICE), and "
	"orders the unit after helperd.service. Run \"systemctl "
	"daemon-reload\" and restart the unit afterwards.\n\n"
	"$ meshctl systemd enable socat.service",
	enable_flags,
};

static const struct cmd_help disable_help = {
	"systemd disable",
	"systemd disable [options] <unit>",
	"Take a systemd service out of the mesh: removes the drop-in that "
	"\"meshctl systemd enable\" wrote (and its directory when it is "
	"left empty). Run \"systemctl daemon-reload\" and restart the unit "
	"afterwards.\n\n"
	"$ meshctl systemd disable socat.service",
	disable_flags,
};

/* "socat" or "socat.service" -> "socat.service" in out; 0, or -1 with
 * the reason printed. Only service units can be preloaded. */
static int
unit_name(const struct cmd_help *h, const char *arg, char *out, size_t len)
{
	const char *dot = strrchr(arg, '.');
	size_t n = strlen(arg);

	if (dot != NULL && strcmp(dot, ".service") != 0) {
		flags_fail(h, "%s is not a .service unit", arg);
		return -1;
	}
	if (n == 0 || (dot != NULL && dot == arg) ||
	    n + (dot == NULL ? 8 : 0) > UNIT_NAME_MAX ||
	    strspn(arg, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789:_.@-\\") != n) {
		flags_fail(h, "\"%s\" is not a valid unit name", arg);
		return -1;
	}
	snprintf(out, len, "%s%s", arg, dot == NULL ? ".service" : "");
	return 0;
}

/* Environment= values are quoted by systemd's rules: refuse what would
 * need escaping rather than write a drop-in that means something else. */
static int
plain_value(const char *what, const char *v)
{
	for (const char *p = v; *p != '\0'; p++) {
		if ((unsigned char)*p <= ' ' || *p == '"' || *p == '\'' ||
		    *p == '\\' || *p == '%' || *p == '$' ||
		    (unsigned char)*p == 0x7f) {
			fprintf(stderr, "%s \"%s\": spaces, quotes, %%, $ and "
			    "backslashes are not supported\n", what, v);
			return -1;
		}
	}
	if (v[0] != '/') {
		fprintf(stderr, "%s \"%s\" must be an absolute path\n", what,
		    v);
		return -1;
	}
	return 0;
}

static int
systemd_enable(int argc, char **argv)
{
	char unit[UNIT_NAME_MAX + 1], svc[MC_NAME_MAX + 1], dir[4096],
	    path[4096], tmp[4096 + 16];
	const char *pos[argc + 1];
	FILE *f = NULL;
	int npos, rc, fd;

	if ((rc = flags_parse(&enable_help, argc, argv, pos, &npos)) != 0)
		return rc < 0 ? 1 : 0;
	if (npos != 1)
		return flags_fail(&enable_help, "Expected one unit, got %d",
		    npos);
	if (unit_name(&enable_help, pos[0], unit, sizeof(unit)) != 0)
		return 1;
	if (s_service == NULL) {
		size_t n = strlen(unit) - strlen(".service");
		const char *at = memchr(unit, '@', n);

		if (at != NULL)
			n = (size_t)(at - unit);    /* foo@1.service -> foo */
		if (n > MC_NAME_MAX)
			return flags_fail(&enable_help, "%s: the name is too "
			    "long for a service: give one with -service", unit);
		memcpy(svc, unit, n);
		svc[n] = '\0';
	} else if (strlen(s_service) > MC_NAME_MAX) {
		return flags_fail(&enable_help, "-service: at most %d "
		    "characters", MC_NAME_MAX);
	} else {
		util_strlcpy(svc, s_service, sizeof(svc));
	}
	if (!mc_valid_name(svc, 0))
		return flags_fail(&enable_help, "\"%s\" is not a valid service "
		    "name: give one with -service", svc);
	if (plain_value("-shim", s_shim) != 0 || (s_socket != NULL &&
	    plain_value("-socket", s_socket) != 0))
		return 1;
	if (access(s_shim, R_OK) != 0)
		fprintf(stderr, "Warning: %s: %s (the unit will fail to "
		    "start until it is there)\n", s_shim, strerror(errno));
	if ((size_t)snprintf(dir, sizeof(dir), "%s/%s.d", s_unit_dir, unit) >=
	    sizeof(dir) || (size_t)snprintf(path, sizeof(path), "%s/"
	    DROPIN_NAME, dir) >= sizeof(path)) {
		fprintf(stderr, "-unit-dir is too long\n");
		return 1;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		fprintf(stderr, "Error creating %s: %s\n", dir,
		    strerror(errno));
		return 1;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
	    0644);
	if (fd < 0 || fchmod(fd, 0644) != 0 ||
	    (f = fdopen(fd, "w")) == NULL) {
		fprintf(stderr, "Error writing %s: %s\n", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		unlink(tmp);
		return 1;
	}
	fprintf(f, "# Written by \"meshctl systemd enable %s\"; "
	    "\"meshctl systemd disable %s\" removes it.\n"
	    "[Unit]\nWants=helperd.service\nAfter=helperd.service\n\n"
	    "[Service]\nEnvironment=LD_PRELOAD=%s\nEnvironment=MESH_SERVICE=%s\n",
	    unit, unit, s_shim, svc);
	if (s_socket != NULL)
		fprintf(f, "Environment=MESH_SOCKET=%s\n", s_socket);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		fprintf(stderr, "Error writing %s: %s\n", tmp, strerror(errno));
		fclose(f);
		unlink(tmp);
		return 1;
	}
	fclose(f);
	if (rename(tmp, path) != 0) {
		fprintf(stderr, "Error writing %s: %s\n", path, strerror(errno));
		unlink(tmp);
		return 1;
	}
	printf("Wrote %s: %s runs as mesh service %s\n"
	    "Apply it: systemctl daemon-reload && systemctl restart %s\n",
	    path, unit, svc, unit);
	return 0;
}

static int
systemd_disable(int argc, char **argv)
{
	char unit[UNIT_NAME_MAX + 1], dir[4096], path[4096];
	const char *pos[argc + 1];
	int npos, rc;

	if ((rc = flags_parse(&disable_help, argc, argv, pos, &npos)) != 0)
		return rc < 0 ? 1 : 0;
	if (npos != 1)
		return flags_fail(&disable_help, "Expected one unit, got %d",
		    npos);
	if (unit_name(&disable_help, pos[0], unit, sizeof(unit)) != 0)
		return 1;
	if ((size_t)snprintf(dir, sizeof(dir), "%s/%s.d", s_unit_dir, unit) >=
	    sizeof(dir) || (size_t)snprintf(path, sizeof(path), "%s/"
	    DROPIN_NAME, dir) >= sizeof(path)) {
		fprintf(stderr, "-unit-dir is too long\n");
		return 1;
	}
	if (unlink(path) != 0) {
		if (errno == ENOENT) {
			printf("%s is not in the mesh (no %s)\n", unit, path);
			return 0;
		}
		fprintf(stderr, "Error removing %s: %s\n", path,
		    strerror(errno));
		return 1;
	}
	rmdir(dir);     /* only when empty: other drop-ins stay */
	printf("Removed %s\n"
	    "Apply it: systemctl daemon-reload && systemctl restart %s\n",
	    path, unit);
	return 0;
}

static const struct subcmd systemd_cmds[] = {
	{ "enable", systemd_enable, "Mesh a systemd service with a drop-in" },
	{ "disable", systemd_disable, "Remove that drop-in" },
};

int
cmd_systemd(int argc, char **argv)
{
	return mc_dispatch("systemd", "Put systemd services in the mesh "
	    "(drop-ins that preload the shim).\n\n"
	    "$ meshctl systemd enable socat.service",
	    systemd_cmds, UTIL_ARRAY_LEN(systemd_cmds), argc, argv);
}
