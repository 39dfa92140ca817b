/* ui_assets: the web UI's files (ui/), built into helperd by ui/embed.py
 * so the page needs nothing installed beside the binary. */
#ifndef MESH_UI_ASSETS_H
#define MESH_UI_ASSETS_H

#include <stddef.h>

struct ui_asset {
	const char *name;          /* "index.html": the path under /ui/ */
	const char *ctype;         /* Content-Type */
	const unsigned char *data;
	size_t len;
};

extern const struct ui_asset ui_assets[];
extern const size_t ui_assets_count;

#endif
