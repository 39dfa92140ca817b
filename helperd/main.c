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
#include "helperd/helperd.h"
#include "helperd/http.h"
#include "helperd/metrics.h"
#include "helperd/loop.h"

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

/* Every relayed connection holds two sockets: take all the fds the hard
 * limit allows. */
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
	struct metrics *m = http_agent_metrics(h);
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

/* One signal read from the signalfd (the loop's round: holding the
 * lock). */
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

int
main(int argc, char **argv)
{
	static struct helperd h;
	const char *file = NULL, *level = NULL;
	char err[CONF_ERR_MAX], devdir[] = "/tmp/meshshim-dev-XXXXXX";
	int dev = 0, check = 0, rc = 1, lvl;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (a[0] == '-' && a[1] == '-')
			a++;
		if (strcmp(a, "-c") == 0 || strcmp(a, "-config") == 0 ||
		    strcmp(a, "-config-file") == 0) {
			if (++i == argc) {
				fprintf(stderr, "helperd: %s needs a file\n",
				    argv[i - 1]);
				return 1;
			}
			file = argv[i];
		} else if (strcmp(a, "-dev") == 0) {
			dev = 1;
		} else if (strcmp(a, "-check") == 0) {
			check = 1;
		} else if (strcmp(a, "-log-level") == 0) {
			if (++i == argc) {
				fprintf(stderr, "helperd: -log-level needs a "
				    "level\n");
				return 1;
			}
			level = argv[i];
		} else if (strcmp(a, "-log-json") == 0) {
			h.log_json_flag = 1;
		} else if (strcmp(a, "-workers") == 0) {
			long n;

			if (++i == argc || util_parse_long(argv[i], 1, 64,
			    &n) != 0) {
				fprintf(stderr, "helperd: -workers needs a "
				    "number from 1 to 64\n");
				return 1;
			}
			h.workers = (int)n;
		} else if (strcmp(a, "-version") == 0 || strcmp(a, "-v") == 0) {
			printf("helperd v%s\n", MESHSHIM_VERSION);
			return 0;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "-help") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "helperd: unknown argument %s\n\n",
			    argv[i]);
			usage(stderr);
			return 1;
		}
	}
	if (file == NULL && !dev) {
		fprintf(stderr, "helperd: give -c mesh.conf or -dev\n\n");
		usage(stderr);
		return 1;
	}
	conf_defaults(&h.conf, dev);
	if (file != NULL && conf_load(&h.conf, file, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		conf_free(&h.conf);
		return 1;
	}
	if (file == NULL && conf_reload_services(&h.conf, err,
	    sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		conf_free(&h.conf);
		return 1;
	}
	if (check) {
		char why[128];
		size_t n_api;

		/* A data_dir that does not exist yet is created 0700. */
		if (!dev && access(h.conf.data_dir, F_OK) == 0 &&
		    util_private_dir(h.conf.data_dir, why, sizeof(why)) != 0) {
			fprintf(stderr, "helperd: data_dir %s: %s; helperd "
			    "would refuse it (keys live there: it must be "
			    "owned by the user that runs helperd and not be "
			    "group- or world-writable)\n", h.conf.data_dir,
			    why);
			conf_free(&h.conf);
			return 1;
		}
		if (helperd_check_state(&h.conf, &n_api, err,
		    sizeof(err)) != 0) {
			fprintf(stderr, "%s\n", err);
			conf_free(&h.conf);
			return 1;
		}
		for (const char *p = h.conf.notices, *nl; *p != '\0';
		    p = nl + 1) {
			if ((nl = strchr(p, '\n')) == NULL)
				break;
			fprintf(stderr, "helperd: warning: %.*s\n",
			    (int)(nl - p), p);
		}
		if (n_api > 0)
			printf("Configuration OK: %zu service(s), %zu "
			    "registered through the API\n", h.conf.n_services,
			    n_api);
		else
			printf("Configuration OK: %zu service(s)\n",
			    h.conf.n_services);
		conf_free(&h.conf);
		return 0;
	}
	if (level == NULL)
		level = h.conf.log_level;
	if ((lvl = log_level_parse(level)) < 0) {
		fprintf(stderr, "helperd: unknown log level %s\n", level);
		conf_free(&h.conf);
		return 1;
	}
	log_init("helperd", 0, (enum log_level)lvl);
	log_set_json(h.log_json_flag || h.conf.log_json);
	h.log_level_flag = level == h.conf.log_level ? -1 : lvl;
	helperd_notices_log(h.conf.notices);
	if (dev) {
		if (mkdtemp(devdir) == NULL) {
			log_err("mkdtemp: %m");
			conf_free(&h.conf);
			return 1;
		}
		util_strlcpy(h.conf.data_dir, devdir,
		    sizeof(h.conf.data_dir));
		log_info("dev mode: data in %s (removed at exit)", devdir);
	}
	{
		/* Blocked before any thread starts (every thread inherits
		 * the mask), so that only run()'s signalfd receives them: a
		 * worker thread would otherwise take the default action. */
		sigset_t set;

		signal_set(&set);
		sigprocmask(SIG_BLOCK, &set, NULL);
	}
	raise_nofile();
	if (helperd_start(&h, err, sizeof(err)) != 0) {
		log_err("cannot start: %s", err);
		goto out;
	}
	rc = run(&h) == 0 ? 0 : 1;
out:
	helperd_stop(&h);
	if (dev)
		nftw(devdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	conf_free(&h.conf);
	log_info("stopped");
	return rc;
}
