/* flags: Consul-style flag parsing, help text, name checks and tables. */
#include "meshctl/meshctl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *mc_http_addr, *mc_token, *mc_token_file;

int
mc_is_http_flag(const char *name)
{
	return strcmp(name, "http-addr") == 0 || strcmp(name, "token") == 0 ||
	    strcmp(name, "token-file") == 0;
}

/* Print text wrapped at 78 columns, each line indented by indent. Lines
 * are separated by '\n'; an empty line stays empty and a line starting
 * with "$ " (an example) is printed as it is, indented further. */
static void
print_wrapped(FILE *f, const char *text, int indent)
{
	const int width = 78;
	const char *p = text;

	while (*p != '\0') {
		size_t linelen = strcspn(p, "\n");
		const char *end = p + linelen;
		int col = indent;

		if (linelen == 0) {
			fputc('\n', f);
		} else if (p[0] == '$' && p[1] == ' ') {
			fprintf(f, "%*s%.*s\n", indent + 4, "", (int)linelen,
			    p);
		} else {
			fprintf(f, "%*s", indent, "");
			while (p < end) {
				size_t w = strcspn(p, " \n");
				if (col > indent && col + 1 + (int)w > width) {
					fprintf(f, "\n%*s", indent, "");
					col = indent;
				}
				if (col > indent) {
					fputc(' ', f);
					col++;
				}
				fwrite(p, 1, w, f);
				col += (int)w;
				p += w;
				while (p < end && *p == ' ')
					p++;
			}
			fputc('\n', f);
		}
		p = end;
		if (*p == '\n')
			p++;
	}
}

static void
print_flags(FILE *f, const struct flag *flags, int http)
{
	for (const struct flag *fl = flags; fl != NULL && fl->name != NULL;
	    fl++) {
		if (mc_is_http_flag(fl->name) != http)
			continue;
		if (fl->type == FLAG_BOOL)
			fprintf(f, "  -%s\n", fl->name);
		else
			fprintf(f, "  -%s=%s\n", fl->name, fl->arg);
		print_wrapped(f, fl->help, 6);
		fputc('\n', f);
	}
}

void
flags_usage(const struct cmd_help *h, int to_err)
{
	FILE *f = to_err ? stderr : stdout;
	const char *u = h->usage;
	int first = 1, has_cmd = 0, has_http = 0;

	while (*u != '\0') {
		size_t n = strcspn(u, "\n");
		fprintf(f, "%s meshctl %.*s\n", first ? "Usage:" : "      ",
		    (int)n, u);
		first = 0;
		u += n;
		if (*u == '\n')
			u++;
	}
	fputc('\n', f);
	print_wrapped(f, h->synopsis, 2);
	for (const struct flag *fl = h->flags; fl != NULL && fl->name != NULL;
	    fl++) {
		if (mc_is_http_flag(fl->name))
			has_http = 1;
		else
			has_cmd = 1;
	}
	if (has_cmd) {
		fprintf(f, "\nCommand Options:\n\n");
		print_flags(f, h->flags, 0);
	}
	if (has_http) {
		fprintf(f, "%sHTTP API Options:\n\n", has_cmd ? "" : "\n");
		print_flags(f, h->flags, 1);
	}
}

int
flags_fail(const struct cmd_help *h, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n\n", stderr);
	flags_usage(h, 1);
	return 1;
}

static int
parse_bool(const char *v, int *out)
{
	static const char *t[] = { "1", "t", "true", "TRUE", "True", "yes" };
	static const char *f[] = { "0", "f", "false", "FALSE", "False", "no" };

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		if (strcmp(v, t[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcmp(v, f[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

int
flags_parse(const struct cmd_help *h, int argc, char **argv,
    const char **pos, int *npos)
{
	*npos = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *name, *eq, *val = NULL;
		const struct flag *fl = NULL;
		size_t nlen;

		if (strcmp(a, "--") == 0) {
			while (++i < argc)
				pos[(*npos)++] = argv[i];
			break;
		}
		if (a[0] != '-' || a[1] == '\0') {
			pos[(*npos)++] = a;
			continue;
		}
		name = a + (a[1] == '-' ? 2 : 1);
		eq = strchr(name, '=');
		nlen = eq != NULL ? (size_t)(eq - name) : strlen(name);
		if (eq != NULL)
			val = eq + 1;
		if ((nlen == 1 && name[0] == 'h') ||
		    (nlen == 4 && strncmp(name, "help", 4) == 0)) {
			flags_usage(h, 0);
			return 1;
		}
		for (const struct flag *f = h->flags; f != NULL &&
		    f->name != NULL; f++)
			if (strlen(f->name) == nlen &&
			    strncmp(f->name, name, nlen) == 0)
				fl = f;
		if (fl == NULL) {
			flags_fail(h, "flag provided but not defined: -%.*s",
			    (int)nlen, name);
			return -1;
		}
		if (fl->type == FLAG_BOOL) {
			int b = 1;
			if (val != NULL && parse_bool(val, &b) != 0) {
				flags_fail(h, "invalid boolean value \"%s\" for "
				    "flag -%s", val, fl->name);
				return -1;
			}
			*(int *)fl->ptr = b;
			continue;
		}
		if (val == NULL) {
			if (i + 1 >= argc) {
				flags_fail(h, "flag needs an argument: -%s",
				    fl->name);
				return -1;
			}
			val = argv[++i];
		}
		if (fl->type == FLAG_STRING) {
			*(const char **)fl->ptr = val;
		} else {
			struct flag_list *l = fl->ptr;
			if (l->n >= MC_LIST_MAX) {
				flags_fail(h, "too many -%s flags (at most %d)",
				    fl->name, MC_LIST_MAX);
				return -1;
			}
			l->v[l->n++] = val;
		}
	}
	return 0;
}

int
mc_valid_name(const char *s, int allow_wild)
{
	size_t n;

	if (s == NULL)
		return 0;
	if (allow_wild && strcmp(s, "*") == 0)
		return 1;
	n = strlen(s);
	if (n < 1 || n > MC_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9');
		if (!alnum && (i == 0 || (c != '-' && c != '_')))
			return 0;
	}
	return 1;
}

struct table {
	size_t ncols, nrows, cap;
	char **cells;               /* nrows * ncols */
};

struct table *
table_new(size_t ncols)
{
	struct table *t = calloc(1, sizeof(*t));

	if (t != NULL)
		t->ncols = ncols;
	return t;
}

int
table_add(struct table *t, const char *const *cells)
{
	if (t->nrows == t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 16;
		char **c = realloc(t->cells, ncap * t->ncols * sizeof(*c));
		if (c == NULL)
			return -1;
		t->cells = c;
		t->cap = ncap;
	}
	for (size_t i = 0; i < t->ncols; i++) {
		char *d = strdup(cells[i] != NULL ? cells[i] : "");
		if (d == NULL) {
			while (i-- > 0)
				free(t->cells[t->nrows * t->ncols + i]);
			return -1;
		}
		t->cells[t->nrows * t->ncols + i] = d;
	}
	t->nrows++;
	return 0;
}

void
table_print(const struct table *t)
{
	size_t w[16] = { 0 };

	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < t->ncols && c < 16; c++) {
			size_t n = strlen(t->cells[r * t->ncols + c]);
			if (n > w[c])
				w[c] = n;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];
			size_t rest = 0;
			for (size_t k = c + 1; k < t->ncols; k++)
				rest += strlen(t->cells[r * t->ncols + k]);
			if (rest == 0) {        /* no trailing blanks */
				printf("%s\n", s);
				break;
			}
			printf("%-*s  ", (int)(c < 16 ? w[c] : 0), s);
		}
	}
}

void
table_free(struct table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

static void
dispatch_usage(FILE *f, const char *group, const char *synopsis,
    const struct subcmd *subs, size_t n)
{
	fprintf(f, "Usage: meshctl %s <subcommand> [options] [args]\n\n",
	    group);
	print_wrapped(f, synopsis, 2);
	fprintf(f, "\nSubcommands:\n");
	for (size_t i = 0; i < n; i++)
		fprintf(f, "    %-10s  %s\n", subs[i].name, subs[i].synopsis);
	fprintf(f, "\nRun \"meshctl %s <subcommand> -help\" for its options.\n",
	    group);
}

int
mc_dispatch(const char *group, const char *synopsis,
    const struct subcmd *subs, size_t n, int argc, char **argv)
{
	if (argc == 0 || strcmp(argv[0], "-h") == 0 ||
	    strcmp(argv[0], "-help") == 0 || strcmp(argv[0], "--help") == 0 ||
	    strcmp(argv[0], "help") == 0) {
		dispatch_usage(stdout, group, synopsis, subs, n);
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		if (strcmp(argv[0], subs[i].name) == 0)
			return subs[i].run(argc - 1, argv + 1);
	fprintf(stderr, "meshctl %s: unknown subcommand \"%s\"\n\n", group,
	    argv[0]);
	dispatch_usage(stderr, group, synopsis, subs, n);
	return 1;
}
