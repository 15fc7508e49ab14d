/*
 * webhook_event.c - building an event's payload from a rendered workflow.
 *
 * The payload is self-contained (the guide's advice: a receiver should not
 * need a follow-up call): the outputs with their URLs and kinds, the
 * metadata a catalogue stores beside them, the final result, and for
 * failures a stable error_code.  Fields are only ever added; removing or
 * renaming one means a new schema_version.
 */
#include <ctype.h>
#include <math.h>
#include <string.h>

#include "kiln/common.h"
#include "kiln/webhook_event.h"

static const struct {
	const char *outcome, *code;
} error_codes[] = {
	{"invalid_input", "INVALID_INPUT"},
	{"permanent_error", "PROVIDER_REJECTED"},
	{"transient_error", "PROVIDER_UNAVAILABLE"},
	{"job_failed", "GENERATION_FAILED"},
	{"deadline_exceeded", "DEADLINE_EXCEEDED"},
	{"cancelled", "CANCELLED"},
};

const char *kiln_event_error_code(const char *outcome)
{
	for (size_t i = 0; outcome && i < sizeof(error_codes) /
						   sizeof(error_codes[0]);
	     i++)
		if (strcmp(outcome, error_codes[i].outcome) == 0)
			return error_codes[i].code;
	return "STEP_FAILED";
}

/* ---- outputs ---------------------------------------------------------- */

static const struct {
	const char *ext, *type;
} ext_types[] = {
	{"png", "image"}, {"jpg", "image"}, {"jpeg", "image"},
	{"webp", "image"}, {"gif", "image"}, {"avif", "image"},
	{"bmp", "image"}, {"tif", "image"}, {"tiff", "image"},
	{"svg", "image"}, {"heic", "image"}, {"mp4", "video"},
	{"webm", "video"}, {"mov", "video"}, {"mkv", "video"},
	{"mp3", "audio"}, {"wav", "audio"}, {"ogg", "audio"},
	{"flac", "audio"}, {"m4a", "audio"}, {"glb", "model"},
	{"obj", "model"}, {"zip", "archive"}, {"pdf", "document"},
	{"json", "data"},
};

/* The extension of url's path, lower-case, into out ("" if none). */
static void url_extension(const char *url, char *out, size_t size)
{
	const char *scheme = strstr(url, "://");
	/* The path starts after the host: "https://cdn.example.com" has
	 * none, so no extension. */
	size_t path = scheme ? (size_t)(scheme - url) + 3 : 0;
	size_t end = strcspn(url, "?#"), i, start;

	out[0] = '\0';
	if (scheme != NULL) {
		path += strcspn(url + path, "/?#");
		if (path >= end)
			return;
	}
	for (i = end; i > path && url[i - 1] != '.' && url[i - 1] != '/'; i--)
		;
	if (i <= path || url[i - 1] != '.' || end - i == 0 ||
	    end - i >= size)
		return;
	start = i;
	for (i = start; i < end; i++)
		out[i - start] = (char)tolower((unsigned char)url[i]);
	out[end - start] = '\0';
}

/* asset_type and format from a content type, else the URL's extension. */
static void describe(json_t *out, const char *url, const char *ctype)
{
	char ext[16], fmt[32] = "";
	const char *type = NULL, *slash;
	size_t i, n;

	url_extension(url ? url : "", ext, sizeof(ext));
	if (ctype != NULL && (slash = strchr(ctype, '/')) != NULL) {
		n = strcspn(slash + 1, ";+ ");
		if (n < sizeof(fmt)) {
			for (i = 0; i < n; i++)
				fmt[i] = (char)tolower(
					(unsigned char)slash[1 + i]);
			fmt[n] = '\0';
		}
		if (strncmp(ctype, "image/", 6) == 0)
			type = "image";
		else if (strncmp(ctype, "video/", 6) == 0)
			type = "video";
		else if (strncmp(ctype, "audio/", 6) == 0)
			type = "audio";
	}
	if (strcmp(fmt, "octet-stream") == 0)
		fmt[0] = '\0';
	if (fmt[0] == '\0')
		kiln_strlcpy(fmt, ext, sizeof(fmt));
	for (i = 0; type == NULL && i < sizeof(ext_types) /
					     sizeof(ext_types[0]);
	     i++)
		if (strcmp(fmt, ext_types[i].ext) == 0 ||
		    strcmp(ext, ext_types[i].ext) == 0)
			type = ext_types[i].type;
	json_object_set_new(out, "asset_type",
			    json_string(type ? type : "file"));
	json_object_set_new(out, "format",
			    fmt[0] ? json_string(fmt) : json_null());
}

static void copy_dimension(json_t *out, const json_t *from, const char *key)
{
	const json_t *v = json_object_get(from, key);

	if (json_is_integer(v) && json_integer_value(v) > 0)
		json_object_set_new(out, key, json_integer(
						      json_integer_value(v)));
}

/* One output for url; from is the object that named it (its width,
 * height and content type, when it has them). */
static void add_output(json_t *outputs, const char *url, const json_t *from,
		       const json_t *result)
{
	json_t *o = json_pack("{s:s}", "asset_url", url);
	const json_t *ctype = json_object_get(from, "content_type");

	describe(o, url, json_string_value(ctype));
	copy_dimension(o, from, "width");
	copy_dimension(o, from, "height");
	/* A single output takes the result's own dimensions. */
	if (from == result || json_object_get(o, "width") == NULL) {
		copy_dimension(o, result, "width");
		copy_dimension(o, result, "height");
	}
	json_array_append_new(outputs, o);
}

/* Outputs from the artifacts kilnd downloaded: the original URL, and
 * where kilnd serves its copy. */
static void artifact_outputs(json_t *outputs, const json_t *artifacts,
			     const json_t *result)
{
	size_t i;
	json_t *a;

	json_array_foreach(artifacts, i, a) {
		const char *url = json_string_value(json_object_get(a, "url"));
		json_t *o;

		if (url == NULL)
			continue;
		add_output(outputs, url, a, result);
		o = json_array_get(outputs, json_array_size(outputs) - 1);
		json_object_set(o, "artifact_url",
				json_object_get(a, "artifact_url"));
		json_object_set(o, "size_bytes",
				json_object_get(a, "size_bytes"));
		json_object_set(o, "sha256", json_object_get(a, "sha256"));
	}
}

/* A string URL, an object with "url", or an array of either. */
static void url_outputs(json_t *outputs, const json_t *v,
			const json_t *result)
{
	size_t i;
	json_t *item;

	if (json_is_string(v)) {
		add_output(outputs, json_string_value(v), result, result);
	} else if (json_is_object(v) &&
		   json_is_string(json_object_get(v, "url"))) {
		add_output(outputs,
			   json_string_value(json_object_get(v, "url")), v,
			   result);
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, item) {
			if (json_is_string(item))
				add_output(outputs, json_string_value(item),
					   NULL, result);
			else
				url_outputs(outputs, item, result);
		}
	}
}

json_t *kiln_result_outputs(const json_t *result)
{
	/* Where providers name their files (Replicate "output", fal
	 * "images"/"video", ...), in order; the first that has any wins.
	 * result_image_path, the workflow API's own result field, comes
	 * first: a result that also echoes its request ("image_url" of the
	 * input image) must not list that input as an output. */
	static const char *const keys[] = {
		"result_image_path", "outputs", "output", "images", "image",
		"videos", "video", "image_url", "video_url", "url",
	};
	json_t *outputs = json_array();
	const json_t *artifacts = json_object_get(result, "artifacts");
	size_t i;

	if (json_array_size(artifacts) > 0) {
		artifact_outputs(outputs, artifacts, result);
		return outputs;
	}
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]) &&
		    json_array_size(outputs) == 0;
	     i++)
		url_outputs(outputs, json_object_get(result, keys[i]), result);
	return outputs;
}

/* ---- metadata --------------------------------------------------------- */

static const json_t *find_step(const json_t *wf, const char *step_id)
{
	size_t i;
	json_t *s;

	if (step_id == NULL)
		return NULL;
	json_array_foreach(json_object_get(wf, "steps"), i, s) {
		const char *sid = json_string_value(
			json_object_get(s, "step_id"));

		if (sid && strcmp(sid, step_id) == 0)
			return s;
	}
	return NULL;
}

/* The first string among key in the step's result, config and provider
 * config. */
static json_t *step_string(const json_t *step, const char *const *keys,
			   size_t n)
{
	static const char *const where[] = {"result", "config",
					    "provider_config"};
	size_t i, j;

	for (i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
		const json_t *o = json_object_get(step, where[i]);

		for (j = 0; j < n; j++) {
			const json_t *v = json_object_get(o, keys[j]);

			if (json_is_string(v))
				return json_incref((json_t *)v);
		}
	}
	return json_null();
}

/* The credits the steps' results report (credit_cost or cost), summed;
 * null when none reports any. */
static json_t *credit_cost(const json_t *wf, const json_t *only)
{
	double sum = 0;
	int any = 0;
	size_t i;
	json_t *s;

	json_array_foreach(json_object_get(wf, "steps"), i, s) {
		const json_t *r = json_object_get(s, "result");
		const json_t *c = json_object_get(r, "credit_cost");

		if (only != NULL && s != only)
			continue;
		if (!json_is_number(c))
			c = json_object_get(r, "cost");
		if (json_is_number(c)) {
			sum += json_number_value(c);
			any = 1;
		}
	}
	return any ? json_real(sum) : json_null();
}

json_t *kiln_workflow_credit_cost(const json_t *wf)
{
	return credit_cost(wf, NULL);
}

static json_t *seconds_between(const json_t *o)
{
	int64_t start = kiln_rfc3339_parse(
		json_string_value(json_object_get(o, "started_at")));
	int64_t end = kiln_rfc3339_parse(
		json_string_value(json_object_get(o, "completed_at")));

	if (start < 0 || end < start)
		return json_null();
	return json_real((double)(end - start) / 1000.0);
}

static json_t *metadata(const json_t *wf, const json_t *step, int step_event)
{
	static const char *const prompt_keys[] = {"prompt_used", "prompt"};
	static const char *const model_keys[] = {"model", "model_id",
						 "version"};
	const json_t *provider = json_object_get(step, "provider_used");

	if (!json_is_string(provider))
		provider = json_object_get(step, "provider");
	return json_pack(
		"{s:o, s:O, s:o, s:o, s:o}", "prompt_used",
		step_string(step, prompt_keys, 2), "provider",
		provider ? provider : json_null(), "model",
		step_string(step, model_keys, 3), "credit_cost",
		credit_cost(wf, step_event ? step : NULL),
		"processing_time_seconds",
		seconds_between(step_event ? step : wf));
}

/* ---- the payload ------------------------------------------------------ */

static const char *simple_status(const char *status)
{
	if (status && strcmp(status, "COMPLETED") == 0)
		return "success";
	if (status && strcmp(status, "CANCELLED") == 0)
		return "cancelled";
	if (status && strcmp(status, "FAILED") == 0)
		return "failed";
	return "running";
}

static json_t *step_summary(const json_t *s)
{
	return json_pack("{s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?}", "step_id",
			 json_object_get(s, "step_id"), "task_type",
			 json_object_get(s, "task_type"), "status",
			 json_object_get(s, "status"), "provider_used",
			 json_object_get(s, "provider_used"), "retry_count",
			 json_object_get(s, "retry_count"), "started_at",
			 json_object_get(s, "started_at"), "completed_at",
			 json_object_get(s, "completed_at"));
}

json_t *kiln_webhook_payload(const struct kiln_event *ev)
{
	const json_t *wf = ev->workflow;
	const json_t *step = find_step(wf, ev->step_id);
	int step_event = strncmp(ev->type, "step.", 5) == 0;
	const json_t *about = step_event ? step : find_step(
		wf, json_string_value(json_object_get(wf, "final_step_id")));
	json_t *result = json_object_get(about, "result");
	const char *status = json_string_value(
		json_object_get(step_event ? step : wf, "status"));
	char ts[KILN_RFC3339_LEN];
	json_t *p, *steps = json_array();
	size_t i;
	json_t *s;

	kiln_rfc3339(ev->now_ms, ts);
	json_array_foreach(json_object_get(wf, "steps"), i, s)
		json_array_append_new(steps, step_summary(s));
	p = json_pack("{s:s, s:s, s:s, s:s, s:O?, s:s, s:s?, s:O?, s:O?, s:O?,"
		      " s:O?}",
		      "schema_version", KILN_WEBHOOK_SCHEMA_VERSION, "id",
		      ev->id, "event", ev->type, "timestamp", ts, "job_id",
		      json_object_get(wf, "id"), "status",
		      simple_status(status), "workflow_status",
		      json_string_value(json_object_get(wf, "status")),
		      "workflow_name", json_object_get(wf, "name"),
		      "origin_reference", json_object_get(wf, "origin_reference"),
		      "origin_tenant_id", json_object_get(wf, "origin_tenant_id"),
		      "canvas_task_id", json_object_get(wf, "canvas_task_id"));
	json_object_set_new(p, "outputs",
			    result ? kiln_result_outputs(result)
				   : json_array());
	json_object_set_new(p, "metadata",
			    metadata(wf, about, step_event));
	json_object_set(p, "result", result ? result : json_null());
	if (step != NULL)
		json_object_set_new(p, "step", step_summary(step));
	if (!step_event)
		json_object_set_new(p, "steps", steps);
	else
		json_decref(steps);
	if (ev->error != NULL) {
		json_object_set_new(
			p, "error_code",
			json_string(kiln_event_error_code(ev->error->outcome)));
		json_object_set_new(p, "error_description",
				    json_string(ev->error->message
							? ev->error->message
							: "failed"));
		json_object_set_new(p, "field",
				    ev->error->field
					    ? json_string(ev->error->field)
					    : json_null());
		if (ev->error->http_status > 0)
			json_object_set_new(
				p, "provider_http_status",
				json_integer(ev->error->http_status));
	}
	return p;
}
