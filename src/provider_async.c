/*
 * provider_async.c - reading an async provider's answers: the job a
 * submission created, the state a status poll reports, the result of a
 * finished job (docs/providers.md, "Async mode").  Pure functions of the
 * provider's config and the JSON answers; the engine does the I/O.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/mapping.h"
#include "kiln/provider.h"
#include "kiln/utf8.h"

/* The job id in RFC 6901 form (~ -> ~0, / -> ~1) for use in a pointer. */
static char *pointer_escape(const char *s)
{
	size_t n = 0, i, o = 0;
	char *out;

	for (i = 0; s[i]; i++)
		n += (s[i] == '~' || s[i] == '/') ? 2 : 1;
	out = malloc(n + 1);
	if (out == NULL)
		return NULL;
	for (i = 0; s[i]; i++) {
		if (s[i] == '~' || s[i] == '/') {
			out[o++] = '~';
			out[o++] = s[i] == '~' ? '0' : '1';
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	return out;
}

char *kiln_subst_job_id(const char *tpl, const char *job_id)
{
	static const char mark[] = "{job_id}";
	size_t n = 0, idlen = strlen(job_id), o = 0;
	const char *p;
	char *out;

	for (p = tpl; (p = strstr(p, mark)) != NULL; p += sizeof(mark) - 1)
		n++;
	out = malloc(strlen(tpl) + n * idlen + 1);
	if (out == NULL)
		return NULL;
	for (p = tpl; *p;) {
		if (strncmp(p, mark, sizeof(mark) - 1) == 0) {
			memcpy(out + o, job_id, idlen);
			o += idlen;
			p += sizeof(mark) - 1;
		} else {
			out[o++] = *p++;
		}
	}
	out[o] = '\0';
	return out;
}

/* Value at pointer (with {job_id} replaced) in doc; borrowed, or NULL. */
static json_t *get_at(const json_t *doc, const char *pointer,
		      const char *job_id)
{
	char *esc, *ptr;
	json_t *v;

	if (pointer == NULL)
		return NULL;
	if (pointer[0] == '\0')
		return (json_t *)doc;
	esc = pointer_escape(job_id ? job_id : "");
	ptr = esc ? kiln_subst_job_id(pointer, esc) : NULL;
	v = ptr ? kiln_json_field_get(doc, ptr) : NULL;
	free(esc);
	free(ptr);
	return v;
}

/* A URL from a pointer into the submit answer or from a template. */
static enum kiln_rc job_url(json_t *job, const char *name,
			    const json_t *answer, const char *pointer,
			    const char *tpl, const char *job_id,
			    struct kiln_err *err)
{
	const char *url;
	char *built;

	if (pointer != NULL) {
		url = json_string_value(get_at(answer, pointer, job_id));
		if (url == NULL || (strncmp(url, "http://", 7) != 0 &&
				    strncmp(url, "https://", 8) != 0))
			return kiln_err_set(err, KILN_EUPSTREAM, "",
					    "the submission's answer has no"
					    " http(s) URL at %s (%s)",
					    pointer, name);
		json_object_set_new(job, name, json_string(url));
	} else if (tpl != NULL) {
		built = kiln_subst_job_id(tpl, job_id);
		if (built == NULL)
			return kiln_err_set(err, KILN_ENOMEM, "",
					    "out of memory");
		json_object_set_new(job, name, json_string(built));
		free(built);
	}
	return KILN_OK;
}

/* The job id as text: a string, or an integer's decimal form. */
static int id_text(const json_t *v, char *buf, size_t size)
{
	if (json_is_string(v) && json_string_length(v) > 0 &&
	    json_string_length(v) < size) {
		memcpy(buf, json_string_value(v), json_string_length(v) + 1);
		return 0;
	}
	if (json_is_integer(v)) {
		snprintf(buf, size, "%" JSON_INTEGER_FORMAT,
			 json_integer_value(v));
		return 0;
	}
	return -1;
}

enum kiln_rc kiln_provider_job(const struct kiln_provider_cfg *p,
			       const json_t *answer, json_t **job_out,
			       struct kiln_err *err)
{
	const struct kiln_provider_ext *x = p->ext;
	char id[512];
	json_t *job;
	enum kiln_rc rc;

	if (id_text(get_at(answer, x->job_id_pointer, NULL), id,
		    sizeof(id)) != 0)
		return kiln_err_set(err, KILN_EUPSTREAM, "",
				    "provider '%s' accepted the job but its"
				    " answer has no job id at %s",
				    p->name, x->job_id_pointer);
	job = json_object();
	json_object_set_new(job, "id", json_string(id));
	rc = job_url(job, "status_url", answer, x->status_url_pointer,
		     x->status_url_template, id, err);
	if (rc == KILN_OK)
		rc = job_url(job, "cancel_url", answer, x->cancel_url_pointer,
			     x->cancel_url_template, id, err);
	if (rc == KILN_OK)
		rc = job_url(job, "result_url", answer, x->result_url_pointer,
			     x->result_url_template, id, err);
	if (rc != KILN_OK) {
		json_decref(job);
		return rc;
	}
	*job_out = job;
	return KILN_OK;
}

/* 1 if the status text is one of values (an array of strings). */
static int is_one_of(const char *status, const json_t *values)
{
	size_t i;

	for (i = 0; i < json_array_size(values); i++)
		if (strcmp(status, json_string_value(
					   json_array_get(values, i))) == 0)
			return 1;
	return 0;
}

enum kiln_job_state kiln_provider_job_state(const struct kiln_provider_cfg *p,
					    const json_t *answer,
					    const char *job_id, char *error,
					    size_t error_size)
{
	const struct kiln_provider_ext *x = p->ext;
	const json_t *v = get_at(answer, x->status_pointer, job_id);
	const json_t *e;
	char status[128], *text;

	if (json_is_string(v))
		kiln_strlcpy(status, json_string_value(v), sizeof(status));
	else if (json_is_integer(v))
		snprintf(status, sizeof(status), "%" JSON_INTEGER_FORMAT,
			 json_integer_value(v));
	else if (json_is_boolean(v))
		kiln_strlcpy(status, json_is_true(v) ? "true" : "false",
			     sizeof(status));
	else
		return KILN_JOB_RUNNING;
	if (is_one_of(status, x->success_values))
		return KILN_JOB_SUCCEEDED;
	if (!is_one_of(status, x->failure_values))
		return KILN_JOB_RUNNING;
	e = get_at(answer, x->error_pointer, job_id);
	if (json_is_string(e)) {
		snprintf(error, error_size, "provider '%s' job %s ended %s: %s",
			 p->name, job_id, status, json_string_value(e));
	} else if (e != NULL && !json_is_null(e)) {
		text = json_dumps(e, JSON_COMPACT | JSON_ENCODE_ANY);
		snprintf(error, error_size, "provider '%s' job %s ended %s: %s",
			 p->name, job_id, status, text ? text : "");
		free(text);
	} else {
		snprintf(error, error_size, "provider '%s' job %s ended %s",
			 p->name, job_id, status);
	}
	kiln_utf8_trim_tail(error);
	return KILN_JOB_FAILED;
}

json_t *kiln_provider_job_result(const struct kiln_provider_cfg *p,
				 const json_t *answer, const char *job_id)
{
	const json_t *v = p->ext->result_pointer
				  ? get_at(answer, p->ext->result_pointer,
					   job_id)
				  : answer;
	json_t *out;

	if (json_is_object(v))
		return json_deep_copy(v);
	/* A step's result is an object: anything else is kept as "output". */
	out = json_object();
	json_object_set_new(out, "output",
			    v ? json_deep_copy(v) : json_null());
	return out;
}

/* Copy of tpl with {job_id} replaced in every string. */
static json_t *subst_tree(const json_t *tpl, const char *job_id)
{
	const char *key;
	json_t *v, *out;
	char *s;
	size_t i;

	if (json_is_string(tpl)) {
		s = kiln_subst_job_id(json_string_value(tpl), job_id);
		out = json_string(s ? s : "");
		free(s);
		return out;
	}
	if (json_is_object(tpl)) {
		out = json_object();
		json_object_foreach((json_t *)tpl, key, v)
			json_object_set_new(out, key, subst_tree(v, job_id));
		return out;
	}
	if (json_is_array(tpl)) {
		out = json_array();
		json_array_foreach(tpl, i, v)
			json_array_append_new(out, subst_tree(v, job_id));
		return out;
	}
	return json_deep_copy(tpl);
}

json_t *kiln_provider_cancel_body(const struct kiln_provider_cfg *p,
				  const char *job_id)
{
	return p->ext->cancel_body ? subst_tree(p->ext->cancel_body, job_id)
				   : NULL;
}
