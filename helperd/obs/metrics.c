/* metrics: snapshot, Consul JSON and Prometheus text (see metrics.h). */
#include "helperd/obs/metrics.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "common/util.h"

enum mtype { M_GAUGE, M_COUNTER, M_HIST };

struct sample {
	char name[96];
	const char *help;
	enum mtype type;
	size_t nl;
	char lk[METRICS_LABELS_MAX][32];
	char lv[METRICS_LABELS_MAX][160];
	double v;
	/* histograms */
	double bounds[METRICS_BUCKETS_MAX];
	uint64_t counts[METRICS_BUCKETS_MAX + 1];
	size_t nb;
	uint64_t count;
	double sum, max;
};

struct metrics {
	struct sample *s;
	size_t n, cap;
	double uptime;
	int oom;
};

struct metrics *
metrics_new(double uptime_s)
{
	struct metrics *m = calloc(1, sizeof(*m));

	if (m != NULL)
		m->uptime = uptime_s > 0 ? uptime_s : 1;
	return m;
}

void
metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	free(m->s);
	free(m);
}

static struct sample *
add(struct metrics *m, const char *name, const char *help, enum mtype t,
    va_list ap)
{
	struct sample *s;
	const char *k;

	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 64;
		struct sample *ns = realloc(m->s, cap * sizeof(*ns));

		if (ns == NULL) {
			m->oom = 1;
			return NULL;
		}
		m->s = ns;
		m->cap = cap;
	}
	s = &m->s[m->n++];
	memset(s, 0, sizeof(*s));
	util_strlcpy(s->name, name, sizeof(s->name));
	s->help = help;
	s->type = t;
	while ((k = va_arg(ap, const char *)) != NULL) {
		const char *v = va_arg(ap, const char *);

		if (v == NULL || v[0] == '\0' || s->nl == METRICS_LABELS_MAX)
			continue;
		util_strlcpy(s->lk[s->nl], k, sizeof(s->lk[0]));
		util_strlcpy(s->lv[s->nl], v, sizeof(s->lv[0]));
		s->nl++;
	}
	return s;
}

void
metrics_gauge(struct metrics *m, const char *name, const char *help,
    double v, ...)
{
	struct sample *s;
	va_list ap;

	va_start(ap, v);
	s = add(m, name, help, M_GAUGE, ap);
	va_end(ap);
	if (s != NULL)
		s->v = v;
}

void
metrics_counter(struct metrics *m, const char *name, const char *help,
    double v, ...)
{
	struct sample *s;
	va_list ap;

	va_start(ap, v);
	s = add(m, name, help, M_COUNTER, ap);
	va_end(ap);
	if (s != NULL)
		s->v = v;
}

void
metrics_histogram(struct metrics *m, const char *name, const char *help,
    const double *bounds, const uint64_t *counts, size_t nb, double sum,
    double max, ...)
{
	struct sample *s;
	va_list ap;

	if (nb > METRICS_BUCKETS_MAX)
		nb = METRICS_BUCKETS_MAX;
	va_start(ap, max);
	s = add(m, name, help, M_HIST, ap);
	va_end(ap);
	if (s == NULL)
		return;
	s->nb = nb;
	memcpy(s->bounds, bounds, nb * sizeof(*bounds));
	for (size_t i = 0; i <= nb; i++) {
		s->counts[i] = counts[i];
		s->count += counts[i];
	}
	s->sum = sum;
	s->max = max;
}

double
metrics_value(const struct metrics *m, const char *name)
{
	double v = 0;

	/* The sum over every label set. */
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->s[i].name, name) == 0)
			v += m->s[i].type == M_HIST ? (double)m->s[i].count :
			    m->s[i].v;
	return v;
}

/* Consul's name: dots for underscores, no _total. */
static void
json_name(const char *prom, char *buf, size_t len)
{
	size_t n = strlen(prom);

	if (n > 6 && strcmp(prom + n - 6, "_total") == 0)
		n -= 6;
	if (n >= len)
		n = len - 1;
	for (size_t i = 0; i < n; i++)
		buf[i] = prom[i] == '_' ? '.' : prom[i];
	buf[n] = '\0';
}

static json_t *
labels_json(const struct sample *s)
{
	json_t *o = json_object();

	for (size_t i = 0; i < s->nl && o != NULL; i++)
		json_object_set_new(o, s->lk[i], json_string(s->lv[i]));
	return o;
}

json_t *
metrics_json(const struct metrics *m)
{
	json_t *j, *g, *c, *sm;
	char ts[64], name[96];
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	/* Go's time.Time String() form, as Consul prints it. */
	strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S +0000 UTC", &tm);
	j = json_pack("{s:s, s:[], s:[], s:[], s:[]}", "Timestamp", ts,
	    "Gauges", "Points", "Counters", "Samples");
	if (j == NULL)
		return NULL;
	g = json_object_get(j, "Gauges");
	c = json_object_get(j, "Counters");
	sm = json_object_get(j, "Samples");
	for (size_t i = 0; i < m->n; i++) {
		const struct sample *s = &m->s[i];

		json_name(s->name, name, sizeof(name));
		if (s->type == M_GAUGE) {
			json_array_append_new(g, json_pack("{s:s, s:f, s:o}",
			    "Name", name, "Value", s->v, "Labels",
			    labels_json(s)));
		} else if (s->type == M_COUNTER) {
			/* Cumulative since start: Count and Sum are the
			 * total, Rate the total per second of uptime. */
			json_array_append_new(c, json_pack("{s:s, s:f, s:f, "
			    "s:f, s:o}", "Name", name, "Count", s->v, "Rate",
			    s->v / m->uptime, "Sum", s->v, "Labels",
			    labels_json(s)));
		} else {
			double mean = s->count ? s->sum / (double)s->count : 0;

			/* Seconds become Consul's milliseconds. */
			json_array_append_new(sm, json_pack("{s:s, s:I, s:f, "
			    "s:f, s:f, s:f, s:o}", "Name", name, "Count",
			    (json_int_t)s->count, "Rate", (double)s->count /
			    m->uptime, "Sum", s->sum * 1000, "Max",
			    s->max * 1000, "Mean", mean * 1000, "Labels",
			    labels_json(s)));
		}
	}
	return j;
}

/* A growing buffer. */
struct buf {
	char *p;
	size_t len, cap;
	int oom;
};

static void
bprintf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
bprintf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = 1;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = (b->cap + (size_t)n + 1) * 2;
		char *np = realloc(b->p, cap);
		if (np == NULL) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
}

/* A label value: backslash, double quote and newline escaped. */
static void
blabel(struct buf *b, const char *v)
{
	for (; *v != '\0'; v++) {
		if (*v == '\\')
			bprintf(b, "\\\\");
		else if (*v == '"')
			bprintf(b, "\\\"");
		else if (*v == '\n')
			bprintf(b, "\\n");
		else
			bprintf(b, "%c", *v);
	}
}

static void
blabels(struct buf *b, const struct sample *s, const char *le)
{
	if (s->nl == 0 && le == NULL)
		return;
	bprintf(b, "{");
	for (size_t i = 0; i < s->nl; i++) {
		bprintf(b, "%s%s=\"", i ? "," : "", s->lk[i]);
		blabel(b, s->lv[i]);
		bprintf(b, "\"");
	}
	if (le != NULL)
		bprintf(b, "%sle=\"%s\"", s->nl ? "," : "", le);
	bprintf(b, "}");
}

static void
bnum(struct buf *b, double v)
{
	if (v > -1e15 && v < 1e15 && v == (double)(long long)v)
		bprintf(b, " %.0f\n", v);
	else
		bprintf(b, " %.9g\n", v);
}

static void
prom_sample(struct buf *b, const struct sample *s)
{
	char le[32];
	uint64_t cum = 0;

	if (s->type != M_HIST) {
		bprintf(b, "%s", s->name);
		blabels(b, s, NULL);
		bnum(b, s->v);
		return;
	}
	for (size_t i = 0; i <= s->nb; i++) {
		cum += s->counts[i];
		if (i < s->nb)
			snprintf(le, sizeof(le), "%g", s->bounds[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		bprintf(b, "%s_bucket", s->name);
		blabels(b, s, le);
		bnum(b, (double)cum);
	}
	bprintf(b, "%s_sum", s->name);
	blabels(b, s, NULL);
	bnum(b, s->sum);
	bprintf(b, "%s_count", s->name);
	blabels(b, s, NULL);
	bnum(b, (double)s->count);
}

char *
metrics_prometheus(const struct metrics *m, size_t *len)
{
	static const char *tname[] = { "gauge", "counter", "histogram" };
	struct buf b = { 0 };
	char *done;

	if ((done = calloc(m->n + 1, 1)) == NULL)
		return NULL;
	bprintf(&b, "%s", "");
	/* One family at a time: every sample of a name together, after
	 * its HELP and TYPE. */
	for (size_t i = 0; i < m->n; i++) {
		if (done[i])
			continue;
		bprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", m->s[i].name,
		    m->s[i].help, m->s[i].name, tname[m->s[i].type]);
		for (size_t k = i; k < m->n; k++) {
			if (done[k] || strcmp(m->s[k].name, m->s[i].name) != 0)
				continue;
			done[k] = 1;
			prom_sample(&b, &m->s[k]);
		}
	}
	free(done);
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	*len = b.len;
	return b.p;
}

void
metrics_process(struct metrics *m)
{
	struct rlimit rl;
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	double n = 0;

	if (d != NULL) {
		while ((e = readdir(d)) != NULL)
			if (e->d_name[0] != '.')
				n++;
		closedir(d);
		n--;            /* the directory's own fd */
	}
	metrics_gauge(m, "meshshim_process_open_fds", "Open file "
	    "descriptors of helperd.", n, NULL);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		metrics_gauge(m, "meshshim_process_max_fds", "helperd's limit "
		    "of open file descriptors (RLIMIT_NOFILE).",
		    rl.rlim_cur == RLIM_INFINITY ? -1 : (double)rl.rlim_cur,
		    NULL);
}
