/* helperd: the meshshim node daemon. */
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <sys/epoll.h>

#include "config.h"
#if HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "common/log.h"
#include "common/util.h"
#include "helperd/node/helperd.h"
#include "helperd/api/http.h"
#include "helperd/obs/metrics.h"
#include "helperd/evloop/loop.h"

static void
usage(FILE *f)
{
	fprintf(f,
	    "Usage: helperd [-c FILE] [-dev] [-check] [-log-level LEVEL]\n"
	    "\n"
	    "The meshshim node daemon: CA, mTLS, intentions, relay, HTTP API.\n"
	    "\n"
	    "  -c FILE           mesh.conf (libconfig syntax), e.g.\n"
	    "                    " MESHSHIM_CONF_PATH "\n"
	    "  -dev              development mode: defaults, allow-all, a\n"
	    "                    temporary data_dir removed at exit\n"
	    "  -check            validate the configuration and exit\n"
	    "                    (0: OK, 1: prints file:line: reason)\n"
	    "  -log-level LEVEL  err, warn, info (default) or debug; overrides\n"
	    "                    log_level of mesh.conf\n"
	    "  -log-json         log lines as JSON (@timestamp, @level,\n"
	    "                    @message), as consul -log-json\n"
	    "  -workers N        relay threads (default: one per CPU)\n"
	    "  -version          print the version and exit\n"
	    "  -h, -help         this text\n"
	    "\n"
	    "Signals: SIGHUP reloads services, default_intention, log and\n"
	    "access_log settings (and reopens their files); SIGUSR1 logs a\n"
	    "line of stats and the current metrics; SIGTERM/SIGINT/SIGQUIT\n"
	    "stop cleanly; any other is logged and ignored. Flags take one\n"
	    "or two dashes.\n"
	    "\n"
	    "Manuals: helperd(8), mesh.conf(5) (every key), meshctl(1),\n"
	    "libmeshshim(8); more in " MESHSHIM_DOC_DIR ".\n");
}

/* Every connection costs helperd two or three fds: take the hard limit
 * (issue 13), and say what it was and what it is. */
static void
raise_nofile(void)
{
	struct rlimit rl;
	rlim_t soft;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		log_warn("getrlimit(RLIMIT_NOFILE): %m");
		return;
	}
	soft = rl.rlim_cur;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
			log_warn("cannot raise the open-files limit from %llu "
			    "to %llu: %m", (unsigned long long)soft,
			    (unsigned long long)rl.rlim_max);
			return;
		}
	}
	log_info("open-files limit: soft %llu (was %llu), hard %llu",
	    (unsigned long long)rl.rlim_cur, (unsigned long long)soft,
	    (unsigned long long)rl.rlim_max);
}

/* systemd (Type=notify): READY, STOPPING and the watchdog. No-ops without
 * libsystemd or outside a notify unit ($NOTIFY_SOCKET unset). */
static void
notify(const char *state)
{
#if HAVE_LIBSYSTEMD
	int r = sd_notify(0, state);

	if (r < 0)
		log_warn("sd_notify %s: %s", state, strerror(-r));
#else
	(void)state;
#endif
}

/* The watchdog interval in ms (half of WatchdogSec), 0 when off. */
static long
watchdog_ms(void)
{
#if HAVE_LIBSYSTEMD
	uint64_t usec = 0;

	if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0)
		return (long)(usec / 2000) > 0 ? (long)(usec / 2000) : 1;
#endif
	return 0;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(path);
}

/* SIGUSR1: the current metrics, one log line per sample, as Consul
 * dumps its telemetry. */
static void
log_metrics(struct helperd *h)
{
	struct metrics *m = http_server_metrics(h->http);
	char *text, *line, *save;
	size_t len, n = 0;

	if (m == NULL || (text = metrics_prometheus(m, &len)) == NULL) {
		metrics_free(m);
		log_err("SIGUSR1: out of memory");
		return;
	}
	metrics_free(m);
	log_info("SIGUSR1: metrics follow (Prometheus names)");
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#')
			continue;
		log_info("metrics: %s", line);
		n++;
	}
	log_info("SIGUSR1: %zu metric samples", n);
	free(text);
}

/* The signals a user may send helperd (kill, systemctl kill, a terminal).
 * All are taken from a signalfd and logged: none kills it silently. Fault
 * signals (SEGV, BUS, FPE, ILL, ABRT, TRAP, SYS) keep their default, a
 * core dump of the crash; SIGKILL and SIGSTOP cannot be caught. */
static void
signal_set(sigset_t *set)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1,
		SIGUSR2, SIGALRM, SIGPIPE, SIGVTALRM, SIGPROF, SIGPOLL, SIGPWR,
		SIGSTKFLT, SIGXCPU, SIGXFSZ };

	sigemptyset(set);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaddset(set, sigs[i]);
	for (int s = SIGRTMIN; s <= SIGRTMAX; s++)
		sigaddset(set, s);
}

/* One signal read from the signalfd (the loop thread). */
static void
on_signal_read(struct helperd *h, const struct signalfd_siginfo *si)
{
	const char *name = sigabbrev_np((int)si->ssi_signo);
	char err[CONF_ERR_MAX];
	char rt[16];

	if (name == NULL) {
		snprintf(rt, sizeof(rt), "RTMIN+%d",
		    (int)si->ssi_signo - SIGRTMIN);
		name = rt;
	}
	switch (si->ssi_signo) {
	case SIGHUP:
		log_info("SIGHUP: reloading");
		if (helperd_reload(h, err, sizeof(err)) != 0)
			log_err("reload failed, keeping the running "
			    "configuration: %s", err);
		break;
	case SIGTERM:
	case SIGINT:
	case SIGQUIT:
		log_info("%s (SIG%s from pid %u): stopping",
		    strsignal((int)si->ssi_signo), name, si->ssi_pid);
		h->stopping = 1;
		break;
	case SIGUSR1:
		helperd_stats_log(h);
		log_metrics(h);
		break;
	case SIGPIPE:
		/* Our own writes to a closed socket raise it too: those
		 * return EPIPE where they happen. */
		if (si->ssi_pid == (uint32_t)getpid())
			break;
		/* fall through */
	default:
		log_warn("SIG%s from pid %u: ignored (SIGHUP reloads, SIGUSR1 "
		    "logs stats, SIGTERM, SIGINT and SIGQUIT stop)", name,
		    si->ssi_pid);
		break;
	}
}

/* The signalfd's watch: every signal waiting, handled in this round. */
struct sigwatch {
	struct loop_watch w;
	struct helperd *h;
};

static void
on_signal(void *arg, uint32_t events)
{
	struct sigwatch *sw = arg;
	struct signalfd_siginfo si;

	(void)events;
	while (read(sw->w.fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		on_signal_read(sw->h, &si);
}

/* systemd's watchdog: a loop that still goes round says so. */
struct watchdog {
	struct loop_timer t;
	struct loop *loop;
	long ms;
};

static void
on_watchdog(void *arg)
{
	struct watchdog *wd = arg;

	notify("WATCHDOG=1");
	if (loop_timer_add(wd->loop, &wd->t, wd->ms) != 0)
		log_err("systemd watchdog: cannot arm its timer");
}

/* The main loop, until a signal stops it. Every module arms its own
 * timers: the loop sleeps until an event or the earliest of them. */
static int
run(struct helperd *h)
{
	struct sigwatch sw = { .w = { .fd = -1 }, .h = h };
	struct watchdog wd = { .loop = h->loop, .ms = watchdog_ms() };
	sigset_t set;
	int sfd, rc = 0;

	signal_set(&set);      /* blocked in every thread since main() */
	sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0 || loop_add(h->loop, &sw.w, sfd, EPOLLIN, on_signal,
	    &sw) != 0) {
		log_err("signalfd: %m");
		if (sfd >= 0)
			close(sfd);
		return -1;
	}
	loop_timer_init(&wd.t, on_watchdog, &wd);
	notify("READY=1");
	if (wd.ms > 0) {
		log_info("systemd watchdog: every %ld ms", wd.ms);
		on_watchdog(&wd);
	}
	while (!h->stopping)
		if (loop_run_once(h->loop, -1) != 0) {
			rc = -1;
			break;
		}
	notify("STOPPING=1");
	loop_timer_del(h->loop, &wd.t);
	loop_del(h->loop, &sw.w);
	close(sfd);
	return rc;
}

/* The command line. */
struct opts {
	const char *file;       /* -c, or NULL with -dev */
	const char *level;      /* -log-level, or NULL */
	int dev, check;
};

enum { ARGS_RUN, ARGS_EXIT_OK, ARGS_EXIT_BAD };

/* One flag that takes a value: argv[++*i], or NULL (said on stderr). */
static const char *
arg_value(int argc, char **argv, int *i, const char *what)
{
	if (++*i == argc) {
		fprintf(stderr, "helperd: %s needs %s\n", argv[*i - 1], what);
		return NULL;
	}
	return argv[*i];
}

/* Parse argv into o (and -log-json, -workers into h). ARGS_RUN, or exit
 * now: ARGS_EXIT_OK (-version, -help) or ARGS_EXIT_BAD (said why). */
static int
parse_args(int argc, char **argv, struct opts *o, struct helperd *h)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		long n;

		if (a[0] == '-' && a[1] == '-')
			a++;
		if (strcmp(a, "-c") == 0 || strcmp(a, "-config") == 0 ||
		    strcmp(a, "-config-file") == 0) {
			if ((o->file = arg_value(argc, argv, &i, "a file")) ==
			    NULL)
				return ARGS_EXIT_BAD;
		} else if (strcmp(a, "-dev") == 0) {
			o->dev = 1;
		} else if (strcmp(a, "-check") == 0) {
			o->check = 1;
		} else if (strcmp(a, "-log-level") == 0) {
			if ((o->level = arg_value(argc, argv, &i, "a level")) ==
			    NULL)
				return ARGS_EXIT_BAD;
		} else if (strcmp(a, "-log-json") == 0) {
			h->log_json_flag = 1;
		} else if (strcmp(a, "-workers") == 0) {
			if (++i == argc || util_parse_long(argv[i], 1, 64,
			    &n) != 0) {
				fprintf(stderr, "helperd: -workers needs a "
				    "number from 1 to 64\n");
				return ARGS_EXIT_BAD;
			}
			h->workers = (int)n;
		} else if (strcmp(a, "-version") == 0 || strcmp(a, "-v") == 0) {
			printf("helperd v%s\n", MESHSHIM_VERSION);
			return ARGS_EXIT_OK;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "-help") == 0) {
			usage(stdout);
			return ARGS_EXIT_OK;
		} else {
			fprintf(stderr, "helperd: unknown argument %s\n\n",
			    argv[i]);
			usage(stderr);
			return ARGS_EXIT_BAD;
		}
	}
	if (o->file == NULL && !o->dev) {
		fprintf(stderr, "helperd: give -c mesh.conf or -dev\n\n");
		usage(stderr);
		return ARGS_EXIT_BAD;
	}
	return ARGS_RUN;
}

/* mesh.conf (or -dev's defaults and services_dir) into h->conf; errors on
 * stderr. 0/-1 (h->conf is freed by the caller either way). */
static int
conf_read(struct helperd *h, const struct opts *o)
{
	char err[CONF_ERR_MAX];

	conf_defaults(&h->conf, o->dev);
	if (o->file != NULL && conf_load(&h->conf, o->file, err,
	    sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	if (o->file == NULL && conf_reload_services(&h->conf, err,
	    sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	return 0;
}

/* -check: what a start would refuse, without starting. The exit status. */
static int
check_only(const struct helperd *h, const struct opts *o)
{
	char err[CONF_ERR_MAX], why[128];
	size_t n_api;

	/* A data_dir that does not exist yet is created 0700. */
	if (!o->dev && access(h->conf.data_dir, F_OK) == 0 &&
	    util_private_dir(h->conf.data_dir, why, sizeof(why)) != 0) {
		fprintf(stderr, "helperd: data_dir %s: %s; helperd would "
		    "refuse it (keys live there: it must be owned by the user "
		    "that runs helperd and not be group- or world-writable)\n",
		    h->conf.data_dir, why);
		return 1;
	}
	if (helperd_check_state(&h->conf, &n_api, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	for (const char *p = h->conf.notices, *nl; *p != '\0'; p = nl + 1) {
		if ((nl = strchr(p, '\n')) == NULL)
			break;
		fprintf(stderr, "helperd: warning: %.*s\n", (int)(nl - p), p);
	}
	if (n_api > 0)
		printf("Configuration OK: %zu service(s), %zu registered "
		    "through the API\n", h->conf.n_services, n_api);
	else
		printf("Configuration OK: %zu service(s)\n",
		    h->conf.n_services);
	return 0;
}

/* The log: level (-log-level over log_level), JSON, the conf's notices.
 * 0/-1 (said on stderr). */
static int
log_start(struct helperd *h, const struct opts *o)
{
	const char *level = o->level != NULL ? o->level : h->conf.log_level;
	int lvl = log_level_parse(level);

	if (lvl < 0) {
		fprintf(stderr, "helperd: unknown log level %s\n", level);
		return -1;
	}
	log_init("helperd", 0, (enum log_level)lvl);
	log_set_json(h->log_json_flag || h->conf.log_json);
	h->log_level_flag = o->level == NULL ? -1 : lvl;
	helperd_notices_log(h->conf.notices);
	return 0;
}

/* -dev: a fresh private data_dir in devdir (a mkdtemp template). 0/-1. */
static int
dev_dir_make(struct helperd *h, char *devdir)
{
	if (mkdtemp(devdir) == NULL) {
		log_err("mkdtemp: %m");
		return -1;
	}
	util_strlcpy(h->conf.data_dir, devdir, sizeof(h->conf.data_dir));
	log_info("dev mode: data in %s (removed at exit)", devdir);
	return 0;
}

/* Blocked before any thread starts (every thread inherits the mask), so
 * that only run()'s signalfd receives them: a worker thread would
 * otherwise take the default action. */
static void
signals_block(void)
{
	sigset_t set;

	signal_set(&set);
	sigprocmask(SIG_BLOCK, &set, NULL);
}

int
main(int argc, char **argv)
{
	static struct helperd h;
	struct opts o = { 0 };
	char err[CONF_ERR_MAX], devdir[] = "/tmp/meshshim-dev-XXXXXX";
	int rc = 1;

	switch (parse_args(argc, argv, &o, &h)) {
	case ARGS_EXIT_OK:
		return 0;
	case ARGS_EXIT_BAD:
		return 1;
	}
	if (conf_read(&h, &o) != 0)
		goto out_conf;
	if (o.check) {
		rc = check_only(&h, &o);
		goto out_conf;
	}
	if (log_start(&h, &o) != 0)
		goto out_conf;
	if (o.dev && dev_dir_make(&h, devdir) != 0)
		goto out_log;
	signals_block();
	raise_nofile();
	if (helperd_start(&h, err, sizeof(err)) != 0) {
		log_err("cannot start: %s", err);
		goto out_dev;
	}
	rc = run(&h) == 0 ? 0 : 1;
	helperd_stop(&h);
out_dev:
	if (o.dev)
		nftw(devdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
out_log:
	log_info("stopped");
out_conf:
	conf_free(&h.conf);
	return rc;
}
