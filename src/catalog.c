/*
 * catalog.c - the catalog of actions (see catalog.h).
 *
 * The first half is the table: one entry per built-in task type of
 * model.c, with the inputs that providers of that kind of task usually
 * read, the outputs a result usually carries, capability strings that
 * tools can filter on, and a step that is valid on its own.  Inputs are
 * advice, not a contract: Kiln sends a step's input to its provider as it
 * is and validates none of these fields.  A test (test_catalog.c) checks
 * that the table covers model.c and that every example step parses.
 *
 * The second half renders the table against the running config: which
 * task types exist (the config may add some, which get the generic
 * entry), which provider each runs on, and which providers a step may
 * name.  Headers are left out (they carry API keys), and a provider's URL
 * is cut to its origin (the path or query may carry keys too).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/catalog.h"
#include "kiln/model.h"
#include "kiln/utf8.h"

/* ------------------------------------------------------------------ */
/* The table                                                           */
/* ------------------------------------------------------------------ */

#define IN_REQ(name, type, desc) {name, type, 1, desc}
#define IN(name, type, desc) {name, type, 0, desc}
#define OUT(name, type, desc) {name, type, 0, desc}
#define END {0}
#define FIELDS(...) ((const struct kiln_catalog_field[]){__VA_ARGS__, END})
#define CAPS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Inputs several task types share. */
#define BASE_IMAGE_URL                                                       \
	IN_REQ("base_image_url", "url",                                      \
	       "The image to work on. Usually mapped from an earlier "       \
	       "step's result_image_path (input_mappings: from_field "       \
	       "result_image_path, to_field base_image_url).")
#define PROMPT(desc) IN("prompt", "string", desc)
#define WIDTH(desc) IN("width", "integer", desc)
#define HEIGHT(desc) IN("height", "integer", desc)
#define SEED IN("seed", "integer", "Seed, for results that can be reproduced.")
#define NUM_IMAGES                                                           \
	IN("num_images", "integer", "How many images to produce (default 1).")

/* What an image result carries. */
#define RESULT_IMAGE_PATH                                                    \
	OUT("result_image_path", "string",                                   \
	    "The produced image: the provider's URL, or the path (relative " \
	    "to the data directory) of the first downloaded artifact. Map "  \
	    "it into a later step's base_image_url. The dryrun provider "    \
	    "sets a dryrun:// placeholder behind which there is no file.")
#define ARTIFACTS                                                            \
	OUT("artifacts", "array",                                            \
	    "Files downloaded from the result's URLs when the provider "     \
	    "configures artifacts: [{url, path, artifact_url, size_bytes, "  \
	    "content_type, sha256}].")
#define OUT_WIDTH                                                            \
	OUT("width", "integer",                                              \
	    "Width of the output in pixels, when the provider reports it.")
#define OUT_HEIGHT                                                           \
	OUT("height", "integer",                                             \
	    "Height of the output in pixels, when the provider reports it.")
#define IMAGE_OUTPUTS                                                        \
	FIELDS(RESULT_IMAGE_PATH, ARTIFACTS, OUT_WIDTH, OUT_HEIGHT)

const struct kiln_catalog_entry kiln_catalog_builtins[] = {
	{
		"GENERATION",
		"Generates images from a text prompt.",
		FIELDS(IN_REQ("prompt", "string", "What to generate."),
		       IN("negative_prompt", "string",
			  "What the image should not show."),
		       WIDTH("Width in pixels (e.g. 1024)."),
		       HEIGHT("Height in pixels (e.g. 1024)."), SEED,
		       NUM_IMAGES),
		IMAGE_OUTPUTS,
		CAPS("text-to-image"),
		"{\"id\": \"generate\", \"task_type\": \"GENERATION\","
		" \"config\": {\"prompt\": \"a ceramic vase on a wooden"
		" table, soft studio light\", \"width\": 1024,"
		" \"height\": 1024}}",
	},
	{
		"REFINE",
		"Improves an existing image (detail, sharpness, artefacts) "
		"without changing what it shows; optionally guided by a "
		"prompt and enlarged on the way.",
		FIELDS(BASE_IMAGE_URL,
		       PROMPT("What to emphasise while refining."),
		       IN("strength", "number",
			  "How far the result may depart from the input, "
			  "from 0 to 1."),
		       IN("upscale_factor", "number",
			  "Enlargement applied while refining (e.g. 2.0)."),
		       SEED),
		IMAGE_OUTPUTS,
		CAPS("image-to-image", "refine"),
		"{\"id\": \"refine\", \"task_type\": \"REFINE\","
		" \"config\": {\"base_image_url\":"
		" \"https://example.com/input.png\","
		" \"upscale_factor\": 2.0}}",
	},
	{
		"UPSCALE",
		"Enlarges an image, adding detail.",
		FIELDS(BASE_IMAGE_URL,
		       IN("upscale_factor", "number",
			  "Enlargement factor (e.g. 2 or 4)."),
		       WIDTH("Target width in pixels, instead of a factor."),
		       HEIGHT("Target height in pixels, instead of a "
			      "factor.")),
		IMAGE_OUTPUTS,
		CAPS("image-to-image", "upscale"),
		"{\"id\": \"upscale\", \"task_type\": \"UPSCALE\","
		" \"config\": {\"base_image_url\":"
		" \"https://example.com/input.png\", \"upscale_factor\": 2}}",
	},
	{
		"REMOVE_BACKGROUND",
		"Cuts the subject of an image out of its background.",
		FIELDS(BASE_IMAGE_URL,
		       IN("output_format", "string",
			  "Format of the cut-out (e.g. png, webp); it keeps "
			  "transparency."),
		       IN("background_color", "string",
			  "Colour to put behind the subject instead of "
			  "transparency (e.g. #ffffff)."),
		       IN("mask_only", "boolean",
			  "Return the subject's mask instead of the "
			  "cut-out.")),
		IMAGE_OUTPUTS,
		CAPS("image-to-image", "background-removal"),
		"{\"id\": \"remove_background\","
		" \"task_type\": \"REMOVE_BACKGROUND\","
		" \"config\": {\"base_image_url\":"
		" \"https://example.com/input.png\"}}",
	},
	{
		"EXPAND",
		"Extends an image beyond its borders (outpainting), filling "
		"the new area to match.",
		FIELDS(BASE_IMAGE_URL,
		       WIDTH("Width of the expanded canvas in pixels."),
		       HEIGHT("Height of the expanded canvas in pixels."),
		       IN("alignment", "string",
			  "Where the original sits on the new canvas (e.g. "
			  "center, top, bottom_left)."),
		       PROMPT("What to show in the new area."), SEED),
		IMAGE_OUTPUTS,
		CAPS("image-to-image", "outpainting"),
		"{\"id\": \"expand\", \"task_type\": \"EXPAND\","
		" \"config\": {\"base_image_url\":"
		" \"https://example.com/input.png\", \"width\": 2048,"
		" \"height\": 1024}}",
	},
	{
		"FILL",
		"Regenerates the masked area of an image (inpainting): "
		"removes, replaces or adds objects.",
		FIELDS(BASE_IMAGE_URL,
		       IN_REQ("mask_url", "url",
			      "Mask image of the same size: white where the "
			      "image is regenerated, black where it is "
			      "kept."),
		       PROMPT("What to paint into the masked area; without "
			      "one, what is there is removed."),
		       SEED, NUM_IMAGES),
		IMAGE_OUTPUTS,
		CAPS("image-to-image", "inpainting"),
		"{\"id\": \"fill\", \"task_type\": \"FILL\","
		" \"config\": {\"base_image_url\":"
		" \"https://example.com/input.png\", \"mask_url\":"
		" \"https://example.com/mask.png\", \"prompt\": \"a bouquet"
		" of tulips\"}}",
	},
	{
		"COMPOSITE",
		"Combines several images into one (a subject placed on a "
		"background, layers), matching light and colour.",
		FIELDS(IN_REQ("image_urls", "array",
			      "URLs of the images to combine, bottom layer "
			      "first. Each is usually mapped from an earlier "
			      "step's result_image_path, appended with "
			      "to_field /image_urls/-."),
		       PROMPT("How to place or blend the layers."),
		       WIDTH("Width of the composite in pixels."),
		       HEIGHT("Height of the composite in pixels.")),
		IMAGE_OUTPUTS,
		CAPS("image-to-image", "compositing", "multi-image"),
		"{\"id\": \"composite\", \"task_type\": \"COMPOSITE\","
		" \"config\": {\"image_urls\":"
		" [\"https://example.com/background.png\","
		" \"https://example.com/subject.png\"]}}",
	},
	{
		"SIMILAR",
		"Generates variations that resemble a reference image in "
		"content and style.",
		FIELDS(BASE_IMAGE_URL,
		       PROMPT("Text that steers the variations."),
		       IN("similarity", "number",
			  "How close to the reference, from 0 to 1."),
		       NUM_IMAGES, SEED),
		IMAGE_OUTPUTS,
		CAPS("image-to-image", "variation"),
		"{\"id\": \"similar\", \"task_type\": \"SIMILAR\","
		" \"config\": {\"base_image_url\":"
		" \"https://example.com/input.png\", \"num_images\": 2}}",
	},
	{
		"VIDEO_GENERATION",
		"Generates a video clip from a prompt, optionally starting "
		"from an image.",
		FIELDS(IN_REQ("prompt", "string", "What happens in the clip."),
		       IN("image_url", "url",
			  "First frame, for image-to-video. Usually mapped "
			  "from an earlier step's result_image_path."),
		       IN("duration_s", "number",
			  "Length of the clip in seconds (e.g. 5)."),
		       WIDTH("Width in pixels."), HEIGHT("Height in pixels."),
		       IN("fps", "integer", "Frames per second."), SEED),
		FIELDS(OUT("result_video_path", "string",
			   "The produced video: the provider's URL, or the "
			   "path of the downloaded artifact. (The dryrun "
			   "provider does not set it; it sets a "
			   "result_image_path placeholder.)"),
		       ARTIFACTS, OUT_WIDTH, OUT_HEIGHT,
		       OUT("duration_s", "number",
			   "Length of the clip in seconds, when the provider "
			   "reports it.")),
		CAPS("text-to-video", "image-to-video"),
		"{\"id\": \"generate_video\","
		" \"task_type\": \"VIDEO_GENERATION\","
		" \"config\": {\"prompt\": \"a paper boat drifting down a"
		" rainy street\", \"duration_s\": 5}}",
	},
	{0},
};

/* A task type that only the config declares: no known inputs; its
 * example step is made from the task type's name. */
static const struct kiln_catalog_entry generic = {
	NULL,
	"A task type declared in this kilnd's config (task_types). Kiln "
	"knows nothing of its inputs: the step's config, with its input "
	"mappings applied, is sent to the provider as it is, and the "
	"provider's JSON answer is the result.",
	(const struct kiln_catalog_field[]){END},
	FIELDS(RESULT_IMAGE_PATH, ARTIFACTS),
	CAPS("custom"),
	NULL,
};

const struct kiln_catalog_entry *kiln_catalog_builtin(const char *task_type)
{
	size_t i;

	for (i = 0; task_type != NULL && kiln_catalog_builtins[i].task_type;
	     i++)
		if (strcmp(kiln_catalog_builtins[i].task_type, task_type) == 0)
			return &kiln_catalog_builtins[i];
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Provider URLs                                                       */
/* ------------------------------------------------------------------ */

static char ascii_lower(char c)
{
	return (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
}

int kiln_catalog_url_origin(const char *url, char *out, size_t size)
{
	const char *sep, *auth, *end, *at;
	size_t scheme_len, host_len, i;

	if (size > 0)
		out[0] = '\0';
	if (url == NULL || size == 0)
		return -1;
	/* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
	scheme_len = strspn(url, "abcdefghijklmnopqrstuvwxyz"
				 "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.");
	sep = url + scheme_len;
	if (scheme_len == 0 || strncmp(sep, "://", 3) != 0 ||
	    !((url[0] >= 'a' && url[0] <= 'z') ||
	      (url[0] >= 'A' && url[0] <= 'Z')))
		return -1;
	auth = sep + 3;
	/* The authority ends where the path, query or fragment starts (a
	 * backslash too: some parsers read it as a slash). */
	end = auth + strcspn(auth, "/?#\\");
	/* Everything up to the last '@' is user name and password. */
	for (at = end; at > auth && at[-1] != '@'; at--)
		;
	host_len = (size_t)(end - at);
	if (host_len == 0 || scheme_len + 3 + host_len + 1 > size)
		return -1;
	for (i = 0; i < scheme_len; i++)
		out[i] = ascii_lower(url[i]);
	memcpy(out + scheme_len, "://", 3);
	for (i = 0; i < host_len; i++)
		out[scheme_len + 3 + i] = ascii_lower(at[i]);
	out[scheme_len + 3 + host_len] = '\0';
	return 0;
}

/* ------------------------------------------------------------------ */
/* Rendering                                                           */
/* ------------------------------------------------------------------ */

/* [{name, type, required, description}] (outputs without "required"),
 * or NULL when out of memory. */
static json_t *render_fields(const struct kiln_catalog_field *f,
			     int has_required)
{
	json_t *list = json_array(), *item;

	for (; list != NULL && f->name != NULL; f++) {
		if (has_required)
			item = json_pack("{sssssbss}", "name", f->name, "type",
					 f->type, "required", f->is_required,
					 "description", f->description);
		else
			item = json_pack("{ssssss}", "name", f->name, "type",
					 f->type, "description",
					 f->description);
		if (json_array_append_new(list, item) != 0) {
			json_decref(list);
			return NULL;
		}
	}
	return list;
}

static json_t *render_strings(const char *const *s)
{
	json_t *list = json_array();

	for (; list != NULL && *s != NULL; s++) {
		if (json_array_append_new(list, json_string(*s)) != 0) {
			json_decref(list);
			return NULL;
		}
	}
	return list;
}

/* The names a step may give as provider_config.provider_type or
 * fallback_provider_type. */
static json_t *render_provider_names(const struct kiln_config *cfg)
{
	json_t *list = json_array();
	size_t i;

	for (i = 0; list != NULL && i < cfg->n_providers; i++) {
		if (json_array_append_new(
			    list, json_string(cfg->providers[i].name)) != 0) {
			json_decref(list);
			return NULL;
		}
	}
	return list;
}

/* CatalogProvider: settings only; never headers, never more of the URL
 * than its origin. */
static json_t *render_provider(const struct kiln_provider_cfg *p)
{
	const struct kiln_provider_ext *x = p->ext;
	int is_http = strcmp(p->type, "http") == 0;
	int is_async = is_http && x != NULL && x->is_async;
	char origin[512];

	if (!is_http ||
	    kiln_catalog_url_origin(p->url, origin, sizeof(origin)) != 0)
		origin[0] = '\0';
	return json_pack("{ssssssss?sisisisisisbsb}", "name", p->name, "type",
			 p->type, "mode", is_async ? "async" : "sync", "url",
			 origin[0] ? origin : NULL, "max_retries",
			 p->max_retries, "timeout_s", p->timeout_s,
			 "connect_timeout_s", p->connect_timeout_s,
			 "step_deadline_s", x ? x->step_deadline_s : 0,
			 "concurrency", x ? x->concurrency : 0, "async",
			 is_async, "artifacts",
			 is_http && x != NULL && x->artifact_pointers != NULL);
}

/* The generic entry's example: {"id": "<task type in lower case>",
 * "task_type": T, "config": {}}. */
static json_t *generic_example(const char *task_type)
{
	char id[128];
	size_t i;

	for (i = 0; task_type[i] != '\0' && i + 1 < sizeof(id); i++)
		id[i] = ascii_lower(task_type[i]);
	id[i] = '\0';
	return json_pack("{sssss{}}", "id", id, "task_type", task_type,
			 "config");
}

/* The example step of a task type (owned), or NULL with err set. */
static json_t *render_example(const struct kiln_catalog_entry *e,
			      const char *task_type, struct kiln_err *err)
{
	json_error_t jerr;
	json_t *example;

	if (e == NULL) {
		example = generic_example(task_type);
		if (example == NULL)
			kiln_err_set(err, KILN_ENOMEM, "", "out of memory");
		return example;
	}
	example = json_loads(e->example_step, 0, &jerr);
	if (example == NULL)
		kiln_err_set(err, KILN_EIO, "",
			     "catalog: the example step of %s does not parse:"
			     " %s",
			     task_type, jerr.text);
	return example;
}

/* The CatalogAction of one configured task type, or NULL with err set. */
static json_t *render_action(const struct kiln_config *cfg,
			     const struct kiln_task_type_cfg *tt,
			     struct kiln_err *err)
{
	const struct kiln_catalog_entry *e = kiln_catalog_builtin(tt->name);
	const struct kiln_catalog_entry *d = e ? e : &generic;
	const struct kiln_provider_cfg *p =
		kiln_config_provider(cfg, tt->provider);
	json_t *example, *provider, *action;

	example = render_example(e, tt->name, err);
	if (example == NULL)
		return NULL;
	provider = p ? render_provider(p) : json_null();
	if (provider == NULL) {
		json_decref(example);
		kiln_err_set(err, KILN_ENOMEM, "", "out of memory");
		return NULL;
	}
	/* "o" hands each value over; when one is NULL for want of memory,
	 * the pack fails and frees the others. */
	action = json_pack("{sssssbsosososososo}", "task_type", tt->name,
			   "description", d->description, "is_builtin",
			   e != NULL, "inputs", render_fields(d->inputs, 1),
			   "outputs", render_fields(d->outputs, 0),
			   "capabilities", render_strings(d->capabilities),
			   "provider", provider, "providers",
			   render_provider_names(cfg), "example_step",
			   example);
	if (action == NULL)
		kiln_err_set(err, KILN_ENOMEM, "", "out of memory");
	return action;
}

/* 1 if the task type's entry lists capability. */
static int has_capability(const char *task_type, const char *capability)
{
	const struct kiln_catalog_entry *e = kiln_catalog_builtin(task_type);
	const char *const *c = (e ? e : &generic)->capabilities;

	for (; *c != NULL; c++)
		if (strcmp(*c, capability) == 0)
			return 1;
	return 0;
}

enum kiln_rc kiln_catalog_render_list(const struct kiln_config *cfg,
				      const char *capability, json_t **out,
				      struct kiln_err *err)
{
	json_t *actions = json_array(), *action, *list;
	enum kiln_rc rc = KILN_ENOMEM;
	size_t i;

	if (actions == NULL) {
		kiln_err_set(err, rc, "", "out of memory");
		goto out;
	}
	for (i = 0; i < cfg->n_task_types; i++) {
		if (capability != NULL &&
		    !has_capability(cfg->task_types[i].name, capability))
			continue;
		action = render_action(cfg, &cfg->task_types[i], err);
		if (action == NULL) {
			rc = err->code;
			goto out;
		}
		if (json_array_append_new(actions, action) != 0) {
			kiln_err_set(err, rc, "", "out of memory");
			goto out;
		}
	}
	list = json_pack("{sOsI}", "actions", actions, "total",
			 (json_int_t)json_array_size(actions));
	if (list == NULL) {
		kiln_err_set(err, rc, "", "out of memory");
		goto out;
	}
	*out = list;
	rc = KILN_OK;
out:
	json_decref(actions);
	return rc;
}

enum kiln_rc kiln_catalog_render_action(const struct kiln_config *cfg,
					const char *task_type, json_t **out,
					struct kiln_err *err)
{
	char quoted[128 + 4];
	json_t *action;
	size_t i;

	for (i = 0; task_type != NULL && i < cfg->n_task_types; i++) {
		if (strcmp(cfg->task_types[i].name, task_type) != 0)
			continue;
		action = render_action(cfg, &cfg->task_types[i], err);
		if (action == NULL)
			return err->code;
		*out = action;
		return KILN_OK;
	}
	kiln_text_excerpt(task_type ? task_type : "",
			  task_type ? strlen(task_type) : 0, 128, quoted);
	return kiln_err_set(err, KILN_ENOTFOUND, "",
			    "Task type '%s' not found", quoted);
}
