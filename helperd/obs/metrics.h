/* metrics: a snapshot of figures (gauges, counters, histograms with
 * labels) that the modules add to, rendered as Consul's
 * /v1/agent/metrics JSON or as Prometheus text exposition 0.0.4.
 * Names are given in Prometheus form (meshshim_connections_opened_total);
 * the JSON name is the same with dots and without _total. */
#ifndef MESH_METRICS_H
#define MESH_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#define METRICS_LABELS_MAX 4
#define METRICS_BUCKETS_MAX 16

struct metrics;

/* An empty snapshot; uptime_s: seconds since helperd started (Consul's
 * counters report a rate: ours is the total over the uptime). */
struct metrics *metrics_new(double uptime_s);
void metrics_free(struct metrics *m);

/* labels: "key", "value", ... NULL (at most METRICS_LABELS_MAX pairs;
 * a NULL or empty value is left out). help: a static string. */
void metrics_gauge(struct metrics *m, const char *name, const char *help,
    double v, ...) __attribute__((sentinel));
void metrics_counter(struct metrics *m, const char *name, const char *help,
    double v, ...) __attribute__((sentinel));
/* A histogram in seconds: bounds[nb] upper bounds, counts[nb + 1] per
 * bucket (not cumulative; the last is +Inf), sum and max in seconds. */
void metrics_histogram(struct metrics *m, const char *name, const char *help,
    const double *bounds, const uint64_t *counts, size_t nb, double sum,
    double max, ...) __attribute__((sentinel));

/* The sum of the samples called name over all their labels (a
 * histogram: its count), for the SIGUSR1 summary; 0 when absent. */
double metrics_value(const struct metrics *m, const char *name);

/* Consul's shape: {Timestamp, Gauges, Points, Counters, Samples}. */
json_t *metrics_json(const struct metrics *m);
/* Prometheus text format 0.0.4, malloc'd; NULL on allocation failure. */
char *metrics_prometheus(const struct metrics *m, size_t *len);

/* The process's open fds and its RLIMIT_NOFILE, added as gauges. */
void metrics_process(struct metrics *m);

#endif
