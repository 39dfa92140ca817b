/* accesslog: the writer's own JSON and text formatter (escaping, invalid
 * UTF-8, left-out fields), and the record buffers end to end through a
 * real file: every submitted line arrives, in order, and a reopen after
 * a rename loses none. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "helperd/obs/accesslog.h"

static struct accesslog_entry
entry(uint64_t id)
{
	struct accesslog_entry e = {
		.id = id, .start_ms = 1764658840123, .end_ms = 1764658841000,
		.direction = "outbound", .src = "web", .dst = "api",
		.pid = 4242, .uid = 1000, .unit = "web.service",
		.src_node = "n1", .dst_node = "n2", .dst_instance = "api",
		.src_spiffe = "spiffe://t/ns/default/dc/dc1/svc/web",
		.dst_spiffe = "spiffe://t/ns/default/dc/dc1/svc/api",
		.bytes_sent = 12, .bytes_rcvd = 18446744073709551615ULL,
		.tls = 1, .resumed = 0, .result = "allowed",
		.reason = "both sides finished",
	};
	return e;
}

static json_t *
parse_line(const char *buf, size_t n)
{
	json_error_t err;
	json_t *j;

	cr_assert_gt(n, 1);
	cr_assert_eq(buf[n - 1], '\n', "a line ends with a newline");
	cr_assert_null(memchr(buf, '\n', n - 1), "one line: %.*s", (int)n, buf);
	j = json_loadb(buf, n, 0, &err);
	cr_assert_not_null(j, "not JSON (%s): %.*s", err.text, (int)n, buf);
	return j;
}

Test(accesslog, json_fields)
{
	struct accesslog_entry e = entry(7);
	char buf[ACCESSLOG_LINE_MAX];
	size_t n = accesslog_format(&e, 1, buf, sizeof(buf));
	json_t *j = parse_line(buf, n);

	cr_assert_str_eq(json_string_value(json_object_get(j, "time")),
	    "2025-12-02T07:00:41.000Z");
	cr_assert_str_eq(json_string_value(json_object_get(j, "start")),
	    "2025-12-02T07:00:40.123Z");
	cr_assert_eq(json_integer_value(json_object_get(j, "id")), 7);
	cr_assert_eq(json_integer_value(json_object_get(j, "duration_ms")),
	    877);
	cr_assert_eq(json_integer_value(json_object_get(j, "pid")), 4242);
	cr_assert_eq(json_integer_value(json_object_get(j, "uid")), 1000);
	cr_assert_str_eq(json_string_value(json_object_get(j, "unit")),
	    "web.service");
	cr_assert(json_is_true(json_object_get(j, "tls")));
	cr_assert(json_is_false(json_object_get(j, "tls_resumed")));
	cr_assert_str_eq(json_string_value(json_object_get(j, "result")),
	    "allowed");
	/* Unknown fields are left out, not null. */
	cr_assert_null(json_object_get(j, "source_addr"));
	cr_assert_null(json_object_get(j, "source_port"));
	json_decref(j);
	/* No pid, no uid: left out too. */
	e.pid = 0;
	e.uid = -1;
	e.reason = "";
	n = accesslog_format(&e, 1, buf, sizeof(buf));
	j = parse_line(buf, n);
	cr_assert_null(json_object_get(j, "pid"));
	cr_assert_null(json_object_get(j, "uid"));
	cr_assert_null(json_object_get(j, "reason"));
	json_decref(j);
}

Test(accesslog, json_escapes_and_bad_utf8)
{
	struct accesslog_entry e = entry(1);
	char buf[ACCESSLOG_LINE_MAX];
	json_t *j;
	size_t n;

	e.reason = "peer said \"no\\way\"\n\r\t\x01 caf\xc3\xa9 \xff\xc3";
	e.unit = "/user.slice/\xe2\x82\xac.scope";
	n = accesslog_format(&e, 1, buf, sizeof(buf));
	j = parse_line(buf, n);
	cr_assert_str_eq(json_string_value(json_object_get(j, "reason")),
	    "peer said \"no\\way\"\n\r\t\x01 caf\xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd");
	cr_assert_str_eq(json_string_value(json_object_get(j, "unit")),
	    "/user.slice/\xe2\x82\xac.scope");
	json_decref(j);
	/* Too small a buffer: 0, never a cut line. */
	cr_assert_eq(accesslog_format(&e, 1, buf, 40), 0);
}

Test(accesslog, text_one_line)
{
	struct accesslog_entry e = entry(3);
	char buf[ACCESSLOG_LINE_MAX];
	size_t n;

	e.reason = "a\nb\rc";
	n = accesslog_format(&e, 0, buf, sizeof(buf));
	cr_assert_gt(n, 0);
	buf[n] = '\0';
	cr_assert_eq(buf[n - 1], '\n');
	cr_assert_null(memchr(buf, '\n', n - 1), "%s", buf);
	cr_assert_not_null(strstr(buf, "2025-12-02T07:00:41.000Z outbound "
	    "id=3 web => api pid=4242 uid=1000 unit=web.service src_node=n1 "), "%s", buf);
	cr_assert_not_null(strstr(buf, " sent=12 rcvd=18446744073709551615 "
	    "duration_ms=877 tls=full result=allowed reason=\"a b c\"\n"), "%s",
	    buf);
}

struct sub_arg {
	struct accesslog *a;
	uint64_t first, n;
};

static void *
submitter(void *arg)
{
	struct sub_arg *s = arg;

	for (uint64_t i = 0; i < s->n; i++) {
		struct accesslog_entry e = entry(s->first + i);

		accesslog_submit(s->a, &e);
		if (i % 100 == 0)
			usleep(1000);
	}
	return NULL;
}

/* Lines of path as parsed ids, in file order: how many, and set seen. */
static size_t
read_ids(const char *path, unsigned char *seen, size_t max, uint64_t *last,
    int *ordered)
{
	FILE *f = fopen(path, "r");
	char line[ACCESSLOG_LINE_MAX];
	size_t n = 0;

	cr_assert_not_null(f, "%s", path);
	while (fgets(line, sizeof(line), f) != NULL) {
		json_t *j = parse_line(line, strlen(line));
		uint64_t id = (uint64_t)json_integer_value(json_object_get(j,
		    "id"));

		cr_assert_lt(id, max);
		cr_assert_eq(seen[id], 0, "id %llu twice",
		    (unsigned long long)id);
		seen[id] = 1;
		/* One submitter's lines (its range of ids) keep its order. */
		if (id < last[id / 100000 - 1])
			*ordered = 0;
		last[id / 100000 - 1] = id;
		json_decref(j);
		n++;
	}
	fclose(f);
	return n;
}

Test(accesslog, no_line_lost_across_reopen)
{
	char dir[] = "/tmp/alogtest.XXXXXX", p1[128], p2[128], err[256];
	struct accesslog *a = accesslog_new();
	struct sub_arg s1, s2;
	pthread_t t1, t2;
	uint64_t written, dropped, last[2] = { 0, 0 };
	unsigned char *seen = calloc(300000, 1);
	int ordered = 1;
	size_t n;

	cr_assert_not_null(a);
	cr_assert_not_null(mkdtemp(dir));
	snprintf(p1, sizeof(p1), "%s/a.log", dir);
	snprintf(p2, sizeof(p2), "%s/a.log.1", dir);
	cr_assert_eq(accesslog_configure(a, p1, 1, err, sizeof(err)), 0, "%s",
	    err);
	s1 = (struct sub_arg){ .a = a, .first = 100000, .n = 10000 };
	s2 = (struct sub_arg){ .a = a, .first = 200000, .n = 10000 };
	pthread_create(&t1, NULL, submitter, &s1);
	pthread_create(&t2, NULL, submitter, &s2);
	usleep(20000);
	/* logrotate: rename, then reopen (SIGHUP) while lines come. */
	cr_assert_eq(rename(p1, p2), 0);
	cr_assert_eq(accesslog_configure(a, p1, 1, err, sizeof(err)), 0, "%s",
	    err);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	accesslog_flush(a);
	accesslog_stats(a, &written, &dropped);
	n = read_ids(p2, seen, 300000, last, &ordered);
	n += read_ids(p1, seen, 300000, last, &ordered);
	cr_assert_eq(written + dropped, 20000, "written %llu dropped %llu",
	    (unsigned long long)written, (unsigned long long)dropped);
	cr_assert_eq(n, written, "%zu lines in the files, %llu counted",
	    n, (unsigned long long)written);
	/* Drops (a writer descheduled while 1 MiB of records came) are
	 * counted above, never silent; at this pace they are rare. */
	cr_assert_lt(dropped, 10000, "%llu dropped", (unsigned long long)dropped);
	cr_assert(ordered, "a submitter's lines out of order");
	accesslog_free(a);
	unlink(p1);
	unlink(p2);
	rmdir(dir);
	free(seen);
}
