/* reload_note: what a load or reload did not apply, said where the
 * operator looks: the log, helperd -check, and the reply of
 * POST /v1/agent/reload (meshctl reload). */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "helperd/node/helperd.h"

/* Append one line to h->reload_note ("..." when full). */
static void
note_add(struct helperd *h, const char *line, size_t len)
{
	size_t used = strlen(h->reload_note), room;

	room = sizeof(h->reload_note) - used;
	if (room < 5)
		return;
	if (used > 0) {
		h->reload_note[used++] = '\n';
		room--;
	}
	if (len >= room) {
		snprintf(h->reload_note + used, room, "%.*s...", (int)(room - 4),
		    line);
		return;
	}
	memcpy(h->reload_note + used, line, len);
	h->reload_note[used + len] = '\0';
}

void
helperd_notices_log(const char *notices)
{
	const char *p = notices, *nl;

	for (; *p != '\0'; p = *nl != '\0' ? nl + 1 : nl) {
		nl = strchr(p, '\n');
		if (nl == NULL)
			nl = p + strlen(p);
		if (nl > p)
			log_warn("%.*s", (int)(nl - p), p);
	}
}

void
helperd_reload_note(struct helperd *h, const struct conf *nc)
{
	/* -dev runs on a temporary data_dir, never the file's. */
	static const char *const dev_skip[] = { "data_dir", NULL };
	char keys[1024], line[1200];
	const char *p, *nl;

	if (conf_diff(&h->conf, nc, h->conf.dev ? dev_skip : NULL, keys,
	    sizeof(keys)) > 0) {
		int n = snprintf(line, sizeof(line), "reload: not applied "
		    "until helperd restarts: %s (the running values stay in "
		    "use)", keys);

		log_warn("%s", line);
		note_add(h, line, n > 0 && (size_t)n < sizeof(line) ?
		    (size_t)n : strlen(line));
	}
	for (p = nc->notices; *p != '\0'; p = *nl != '\0' ? nl + 1 : nl) {
		nl = strchr(p, '\n');
		if (nl == NULL)
			nl = p + strlen(p);
		if (nl > p)
			note_add(h, p, (size_t)(nl - p));
	}
	helperd_notices_log(nc->notices);
}
