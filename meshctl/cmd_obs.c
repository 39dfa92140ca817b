/* cmd_obs: watching a node: "meshctl conns", "meshctl conn kill ID",
 * "meshctl top", "meshctl members", "meshctl info". */
#include "meshctl/api.h"
#include "meshctl/meshctl.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static json_t *
get_json(const char *path, const char *what)
{
	struct api_resp r;
	json_t *j = NULL;

	if (api_request("GET", path, NULL, &r) != 0)
		return NULL;
	if (r.status != 200)
		fprintf(stderr, "Error %s: %s\n", what, api_errtext(&r));
	else
		j = api_json(&r, what);
	api_resp_free(&r);
	return j;
}

static const char *
jstr(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "";
}

static double
jnum(const json_t *o, const char *key)
{
	return json_number_value(json_object_get(o, key));
}

/* 1234567 -> "1.2M" (powers of 1024, as ss and top). */
static void
human(double v, char *buf, size_t len)
{
	static const char *u[] = { "B", "K", "M", "G", "T" };
	int i = 0;

	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(buf, len, "%.0f%s", v, u[i]);
	else
		snprintf(buf, len, "%.1f%s", v, u[i]);
}

static void
age(double s, char *buf, size_t len)
{
	long t = (long)s;

	if (t < 60)
		snprintf(buf, len, "%lds", t);
	else if (t < 3600)
		snprintf(buf, len, "%ldm%02lds", t / 60, t % 60);
	else
		snprintf(buf, len, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Bytes both ways of connection id in prev (an array), or -1. */
static double
prev_bytes(const json_t *prev, json_int_t id)
{
	size_t i;
	json_t *c;

	json_array_foreach(prev, i, c)
		if (json_integer_value(json_object_get(c, "ID")) == id)
			return jnum(c, "BytesSent") + jnum(c, "BytesReceived");
	return -1;
}

struct row {
	json_t *c;
	double rate;
};

static int
cmp_rate(const void *a, const void *b)
{
	const struct row *x = a, *y = b;

	if (x->rate != y->rate)
		return x->rate < y->rate ? 1 : -1;
	return json_integer_value(json_object_get(x->c, "ID")) <
	    json_integer_value(json_object_get(y->c, "ID")) ? -1 : 1;
}

static int
cmp_id(const void *a, const void *b)
{
	const struct row *x = a, *y = b;

	return json_integer_value(json_object_get(x->c, "ID")) <
	    json_integer_value(json_object_get(y->c, "ID")) ? -1 : 1;
}

/* The table of conns (rates against prev, dt seconds earlier; prev NULL:
 * no rate column values). by_rate: busiest first, else by ID. */
static int
print_conns(const json_t *conns, const json_t *prev, double dt, int by_rate)
{
	static const char *head[] = { "ID", "DIR", "SOURCE", "PID", "UNIT",
		"DESTINATION", "NODE", "AGE", "SENT", "RECV", "RATE" };
	size_t n = json_array_size(conns), i;
	struct row *rows = calloc(n + 1, sizeof(*rows));
	struct table *t = table_new(UTIL_ARRAY_LEN(head));
	json_t *c;

	if (rows == NULL || t == NULL || table_add(t, head) != 0) {
		free(rows);
		table_free(t);
		return 1;
	}
	json_array_foreach(conns, i, c) {
		double pb = prev != NULL ? prev_bytes(prev,
		    json_integer_value(json_object_get(c, "ID"))) : -1;
		double b = jnum(c, "BytesSent") + jnum(c, "BytesReceived");

		rows[i].c = c;
		/* New since the last look: its bytes over its age. */
		if (pb < 0 && prev != NULL)
			pb = 0, dt = jnum(c, "AgeSeconds") < dt ?
			    jnum(c, "AgeSeconds") : dt;
		rows[i].rate = pb >= 0 && dt > 0 ? (b - pb) / dt : -1;
	}
	qsort(rows, n, sizeof(*rows), by_rate ? cmp_rate : cmp_id);
	for (i = 0; i < n; i++) {
		char id[24], pid[16], ag[24], sent[16], recv[16], rate[24];
		const char *cells[UTIL_ARRAY_LEN(head)];

		c = rows[i].c;
		snprintf(id, sizeof(id), "%lld",
		    (long long)json_integer_value(json_object_get(c, "ID")));
		if (json_object_get(c, "PID") != NULL)
			snprintf(pid, sizeof(pid), "%lld", (long long)
			    json_integer_value(json_object_get(c, "PID")));
		else
			snprintf(pid, sizeof(pid), "-");
		age(jnum(c, "AgeSeconds"), ag, sizeof(ag));
		human(jnum(c, "BytesSent"), sent, sizeof(sent));
		human(jnum(c, "BytesReceived"), recv, sizeof(recv));
		if (rows[i].rate >= 0) {
			human(rows[i].rate, rate, sizeof(rate) - 2);
			strcat(rate, "/s");
		} else {
			snprintf(rate, sizeof(rate), "-");
		}
		cells[0] = id;
		cells[1] = strcmp(jstr(c, "Direction"), "inbound") == 0 ?
		    "in" : "out";
		cells[2] = jstr(c, "Source");
		cells[3] = pid;
		cells[4] = jstr(c, "Unit")[0] ? jstr(c, "Unit") : "-";
		cells[5] = jstr(c, "Destination");
		cells[6] = jstr(c, "Node")[0] ? jstr(c, "Node") : "-";
		cells[7] = ag;
		cells[8] = sent;
		cells[9] = recv;
		cells[10] = rate;
		if (table_add(t, cells) != 0)
			break;
	}
	table_print(t);
	table_free(t);
	free(rows);
	return 0;
}

/* ---- conns ---- */

static const char *c_interval = "500ms";
static int c_json;

static const struct flag conns_flags[] = {
	{ "rate-interval", FLAG_STRING, &c_interval, "<duration>",
	    "Look twice this far apart to show each connection's current "
	    "rate (0: no rate column values). Default 500ms." },
	{ "json", FLAG_BOOL, &c_json, NULL,
	    "Print the API's JSON (GET /v1/agent/connections) as it is." },
	FLAG_HTTP_ADDR,
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cmd_help conns_help = {
	"conns", "conns [options]",
	"List the connections this node relays now, like ss: ID, direction, "
	"source service with the pid and systemd unit (or cgroup) of the "
	"process that connected, destination, the node it reached, age, "
	"bytes each way (SENT: source to destination) and the current "
	"rate. A same-node connection shows both halves (out and in).\n\n"
	"$ meshctl conns\n$ meshctl conn kill 42",
	conns_flags,
};

/* "500ms", "2s", "1.5s", "0" -> seconds; -1 if malformed. */
static double
parse_interval(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || v < 0 || v > 3600)
		return -1;
	if (strcmp(end, "ms") == 0)
		return v / 1000;
	if (strcmp(end, "s") == 0 || *end == '\0')
		return v;
	return -1;
}

int
cmd_conns(int argc, char **argv)
{
	const char *pos[argc + 1];
	json_t *a, *b = NULL;
	double iv, t0;
	int npos, rc;

	if ((rc = flags_parse(&conns_help, argc, argv, pos, &npos)) != 0)
		return rc < 0 ? 1 : 0;
	if (npos != 0)
		return flags_fail(&conns_help, "Too many arguments (expected "
		    "0, got %d)", npos);
	if ((iv = parse_interval(c_interval)) < 0)
		return flags_fail(&conns_help, "-rate-interval: expected a "
		    "duration such as 500ms or 2s, got %s", c_interval);
	t0 = now_s();
	if ((a = get_json("/v1/agent/connections", "listing connections")) ==
	    NULL)
		return 1;
	if (c_json) {
		char *s = json_dumps(a, JSON_INDENT(2));

		printf("%s\n", s != NULL ? s : "[]");
		free(s);
		json_decref(a);
		return 0;
	}
	if (iv > 0 && json_array_size(a) > 0) {
		usleep((useconds_t)(iv * 1e6));
		b = get_json("/v1/agent/connections", "listing connections");
		if (b == NULL) {
			json_decref(a);
			return 1;
		}
	}
	if (json_array_size(b != NULL ? b : a) == 0) {
		printf("No connections.\n");
		rc = 0;
	} else {
		rc = b != NULL ? print_conns(b, a, now_s() - t0, 0) :
		    print_conns(a, NULL, 0, 0);
	}
	json_decref(a);
	json_decref(b);
	return rc;
}

/* ---- conn kill ---- */

static const struct flag kill_flags[] = {
	FLAG_HTTP_ADDR,
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cmd_help kill_help = {
	"conn kill", "conn kill [options] ID",
	"Cut one relayed connection (an ID from meshctl conns): both "
	"applications see a reset. helperd logs it, and the access log "
	"says result \"killed\". A write: with ACLs it needs a grant "
	"(DELETE /v1/agent/connections/ID).",
	kill_flags,
};

static int
conn_kill(int argc, char **argv)
{
	const char *pos[argc + 1];
	struct api_resp r;
	char path[96];
	long id;
	int npos, rc;

	if ((rc = flags_parse(&kill_help, argc, argv, pos, &npos)) != 0)
		return rc < 0 ? 1 : 0;
	if (npos != 1)
		return flags_fail(&kill_help, "Expected one connection ID, got "
		    "%d arguments", npos);
	if (util_parse_long(pos[0], 1, 0x7fffffffffffffffL, &id) != 0)
		return flags_fail(&kill_help, "Invalid connection ID %s "
		    "(expected a number from meshctl conns)", pos[0]);
	snprintf(path, sizeof(path), "/v1/agent/connections/%ld", id);
	if (api_request("DELETE", path, NULL, &r) != 0)
		return 1;
	if (r.status != 200) {
		fprintf(stderr, "Error killing connection %ld: %s\n", id,
		    api_errtext(&r));
		api_resp_free(&r);
		return 1;
	}
	api_resp_free(&r);
	printf("Connection %ld killed\n", id);
	return 0;
}

static const struct subcmd conn_cmds[] = {
	{ "kill", conn_kill, "Cut one relayed connection" },
};

int
cmd_conn(int argc, char **argv)
{
	return mc_dispatch("conn", "Act on one relayed connection "
	    "(see meshctl conns).", conn_cmds, UTIL_ARRAY_LEN(conn_cmds),
	    argc, argv);
}

/* ---- top ---- */

static const char *t_interval = "2s";
static const char *t_count = "0";

static const struct flag top_flags[] = {
	{ "interval", FLAG_STRING, &t_interval, "<duration>",
	    "Time between refreshes. Default 2s." },
	{ "n", FLAG_STRING, &t_count, "<count>",
	    "Stop after this many screens (0: until interrupted)." },
	FLAG_HTTP_ADDR,
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cmd_help top_help = {
	"top", "top [options]",
	"meshctl conns, refreshed: the busiest connections first, by their "
	"rate since the previous screen, under a line of totals.",
	top_flags,
};

int
cmd_top(int argc, char **argv)
{
	const char *pos[argc + 1];
	json_t *prev = NULL;
	double iv, tprev = 0;
	long count;
	int npos, rc, tty = isatty(STDOUT_FILENO);

	if ((rc = flags_parse(&top_help, argc, argv, pos, &npos)) != 0)
		return rc < 0 ? 1 : 0;
	if (npos != 0)
		return flags_fail(&top_help, "Too many arguments (expected 0, "
		    "got %d)", npos);
	if ((iv = parse_interval(t_interval)) <= 0)
		return flags_fail(&top_help, "-interval: expected a duration "
		    "such as 2s or 500ms, got %s", t_interval);
	if (util_parse_long(t_count, 0, 1000000, &count) != 0)
		return flags_fail(&top_help, "-n: expected a count, got %s",
		    t_count);
	for (long k = 0; count == 0 || k < count; k++) {
		json_t *a = get_json("/v1/agent/connections",
		    "listing connections"), *c;
		double t = now_s(), sent = 0, recv = 0;
		char s1[16], s2[16], ts[32];
		time_t wall = time(NULL);
		struct tm tm;
		size_t i;

		if (a == NULL) {
			json_decref(prev);
			return 1;
		}
		json_array_foreach(a, i, c) {
			sent += jnum(c, "BytesSent");
			recv += jnum(c, "BytesReceived");
		}
		human(sent, s1, sizeof(s1));
		human(recv, s2, sizeof(s2));
		localtime_r(&wall, &tm);
		strftime(ts, sizeof(ts), "%H:%M:%S", &tm);
		if (tty)
			printf("\033[H\033[2J");
		printf("meshctl top - %s  %zu connection(s)  sent %s  "
		    "received %s\n\n", ts, json_array_size(a), s1, s2);
		if (json_array_size(a) > 0)
			print_conns(a, prev, prev != NULL ? t - tprev : 0, 1);
		if (!tty)
			printf("\n");
		fflush(stdout);
		json_decref(prev);
		prev = a;
		tprev = t;
		if (count == 0 || k + 1 < count)
			usleep((useconds_t)(iv * 1e6));
	}
	json_decref(prev);
	return 0;
}

/* ---- members ---- */

static const struct flag members_flags[] = {
	FLAG_HTTP_ADDR,
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cmd_help members_help = {
	"members", "members [options]",
	"List the nodes of the mesh as this node knows them: name, address, "
	"status (alive; with etcd: failed when its lease ran out, left when "
	"it stopped cleanly), datacenter and version.",
	members_flags,
};

int
cmd_members(int argc, char **argv)
{
	static const char *head[] = { "Node", "Address", "Status", "DC",
		"Version" };
	const char *pos[argc + 1];
	struct table *t;
	json_t *a, *m;
	size_t i;
	int npos, rc;

	if ((rc = flags_parse(&members_help, argc, argv, pos, &npos)) != 0)
		return rc < 0 ? 1 : 0;
	if (npos != 0)
		return flags_fail(&members_help, "Too many arguments "
		    "(expected 0, got %d)", npos);
	if ((a = get_json("/v1/agent/members", "listing members")) == NULL)
		return 1;
	if ((t = table_new(UTIL_ARRAY_LEN(head))) == NULL ||
	    table_add(t, head) != 0) {
		table_free(t);
		json_decref(a);
		return 1;
	}
	json_array_foreach(a, i, m) {
		const char *cells[] = { jstr(m, "Name"), jstr(m, "Addr"),
			jstr(m, "Status"), jstr(m, "Datacenter"),
			jstr(m, "Version")[0] ? jstr(m, "Version") : "-" };

		table_add(t, cells);
	}
	table_print(t);
	table_free(t);
	json_decref(a);
	return 0;
}

/* ---- info ---- */

static const struct flag info_flags[] = {
	FLAG_HTTP_ADDR,
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cmd_help info_help = {
	"info", "info [options]",
	"Print what helperd says about itself (GET /v1/agent/self) and a "
	"summary of its metrics (GET /v1/agent/metrics), by section, as "
	"consul info.",
	info_flags,
};

/* The sum of the samples of a gauge or counter called name. */
static double
metric_sum(const json_t *m, const char *section, const char *name)
{
	double v = 0;
	size_t i;
	json_t *e;

	json_array_foreach(json_object_get(m, section), i, e)
		if (strcmp(jstr(e, "Name"), name) == 0)
			v += strcmp(section, "Gauges") == 0 ? jnum(e, "Value") :
			    jnum(e, "Sum");
	return v;
}

int
cmd_info(int argc, char **argv)
{
	const char *pos[argc + 1];
	json_t *self, *m, *cfg, *st;
	const char *k;
	json_t *v;
	int npos, rc;

	if ((rc = flags_parse(&info_help, argc, argv, pos, &npos)) != 0)
		return rc < 0 ? 1 : 0;
	if (npos != 0)
		return flags_fail(&info_help, "Too many arguments (expected 0, "
		    "got %d)", npos);
	if ((self = get_json("/v1/agent/self", "reading agent info")) == NULL)
		return 1;
	if ((m = get_json("/v1/agent/metrics", "reading metrics")) == NULL) {
		json_decref(self);
		return 1;
	}
	cfg = json_object_get(self, "Config");
	st = json_object_get(self, "Stats");
	printf("agent:\n");
	json_object_foreach(cfg, k, v) {
		if (json_is_string(v))
			printf("\t%s = %s\n", k, json_string_value(v));
		else if (json_is_integer(v))
			printf("\t%s = %lld\n", k,
			    (long long)json_integer_value(v));
	}
	printf("\tuptime = %.0fs\n", metric_sum(m, "Gauges",
	    "meshshim.uptime.seconds"));
	printf("relay:\n");
	json_object_foreach(st, k, v)
		if (json_is_integer(v))
			printf("\t%s = %lld\n", k,
			    (long long)json_integer_value(v));
	printf("\tconnections_opened = %.0f\n", metric_sum(m, "Counters",
	    "meshshim.connections.opened"));
	printf("\tconnections_denied = %.0f\n", metric_sum(m, "Counters",
	    "meshshim.connections.denied"));
	printf("\tconnections_cut = %.0f\n", metric_sum(m, "Counters",
	    "meshshim.connections.cut"));
	printf("\tbytes_sent = %.0f\n", metric_sum(m, "Counters",
	    "meshshim.connection.sent.bytes"));
	printf("\tbytes_received = %.0f\n", metric_sum(m, "Counters",
	    "meshshim.connection.received.bytes"));
	printf("runtime:\n");
	printf("\topen_fds = %.0f\n", metric_sum(m, "Gauges",
	    "meshshim.process.open.fds"));
	printf("\tmax_fds = %.0f\n", metric_sum(m, "Gauges",
	    "meshshim.process.max.fds"));
	printf("\taccess_log_dropped = %.0f\n", metric_sum(m, "Counters",
	    "meshshim.access.log.dropped"));
	json_decref(self);
	json_decref(m);
	return 0;
}

/* ---- monitor ---- */

static const char *m_level = "info";

static const struct flag monitor_flags[] = {
	{ "log-level", FLAG_STRING, &m_level, "<level>",
	    "Stream lines at this level and above: error, warn, info "
	    "(default), debug or trace, whatever helperd's own log_level." },
	FLAG_HTTP_ADDR,
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cmd_help monitor_help = {
	"monitor", "monitor [options]",
	"Stream helperd's log lines as they are written (GET "
	"/v1/agent/monitor), until interrupted or helperd stops. Lines "
	"come in the format helperd logs in (text, or JSON with "
	"-log-json).",
	monitor_flags,
};

int
cmd_monitor(int argc, char **argv)
{
	static const char *levels[] = { "error", "err", "warn", "warning",
		"info", "debug", "trace" };
	const char *pos[argc + 1];
	struct api_resp r;
	char path[96];
	int npos, rc, known = 0;

	if ((rc = flags_parse(&monitor_help, argc, argv, pos, &npos)) != 0)
		return rc < 0 ? 1 : 0;
	if (npos != 0)
		return flags_fail(&monitor_help, "Too many arguments "
		    "(expected 0, got %d)", npos);
	for (size_t i = 0; i < UTIL_ARRAY_LEN(levels); i++)
		if (strcmp(m_level, levels[i]) == 0)
			known = 1;
	if (!known)
		return flags_fail(&monitor_help, "Unknown log level: %s",
		    m_level);
	snprintf(path, sizeof(path), "/v1/agent/monitor?loglevel=%s",
	    m_level);
	if (api_stream(path, &r) != 0)
		return 1;
	if (r.status != 200) {
		fprintf(stderr, "Error starting monitor: %s\n",
		    api_errtext(&r));
		api_resp_free(&r);
		return 1;
	}
	api_resp_free(&r);
	return 0;
}
