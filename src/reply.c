/*
 * reply.c - the only place that maps error codes to HTTP statuses and
 * renders errors: {"detail": "..."} for client errors, FastAPI's list for
 * validation (422), and a logged, generic 500 for our own failures.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kiln/http.h"
#include "kiln/json_load.h"
#include "kiln/json_writer.h"
#include "kiln/log.h"

void kiln_reply_drop(struct kiln_resp *resp)
{
	json_decref(resp->body);
	resp->body = NULL;
	free(resp->text);
	resp->text = NULL;
	resp->text_len = 0;
}

void kiln_reply_json(struct kiln_resp *resp, unsigned status, json_t *body)
{
	kiln_reply_drop(resp);
	resp->status = status;
	resp->body = body;
}

void kiln_reply_text(struct kiln_resp *resp, unsigned status, char *text,
		     size_t len)
{
	kiln_reply_drop(resp);
	resp->status = status;
	resp->text = text;
	resp->text_len = len;
}

void kiln_reply_detail(struct kiln_resp *resp, unsigned status,
		       const char *fmt, ...)
{
	char msg[KILN_ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	kiln_reply_json(resp, status, json_pack("{ss}", "detail", msg));
}

void kiln_reply_validation(struct kiln_resp *resp, json_t *detail)
{
	kiln_reply_json(resp, MHD_HTTP_UNPROCESSABLE_CONTENT,
			json_pack("{so}", "detail", detail));
}

void kiln_reply_error(struct kiln_resp *resp, const struct kiln_err *err)
{
	switch (err->code) {
	case KILN_EINVAL:
		kiln_reply_validation(
			resp, json_pack("[{s[ss]ssss}]", "loc", "body",
					err->field[0] ? err->field : "body",
					"msg", err->msg, "type",
					"value_error"));
		return;
	case KILN_ENOTFOUND:
		kiln_reply_detail(resp, MHD_HTTP_NOT_FOUND, "%s", err->msg);
		return;
	case KILN_ECONFLICT:
		kiln_reply_detail(resp, MHD_HTTP_CONFLICT, "%s", err->msg);
		return;
	case KILN_EFORBIDDEN:
		kiln_reply_detail(resp, MHD_HTTP_FORBIDDEN, "%s", err->msg);
		return;
	case KILN_EAUTH:
		kiln_reply_detail(resp, MHD_HTTP_UNAUTHORIZED, "%s", err->msg);
		resp->is_auth_challenge = 1;
		return;
	case KILN_ETOOBIG:
		kiln_reply_detail(resp, MHD_HTTP_CONTENT_TOO_LARGE, "%s",
				  err->msg);
		return;
	case KILN_EBUSY:
		kiln_log(KILN_LOG_WARN, "store busy: %s", err->msg);
		kiln_reply_detail(resp, MHD_HTTP_SERVICE_UNAVAILABLE,
				  "store busy, retry shortly");
		resp->retry_after_s = 1;
		return;
	default:
		kiln_log(KILN_LOG_ERROR, "internal error (%s): %s",
			 kiln_rc_name(err->code), err->msg);
		kiln_reply_detail(resp, MHD_HTTP_INTERNAL_SERVER_ERROR,
				  "internal error");
		return;
	}
}

void kiln_reply_invalid_input(struct kiln_resp *resp, json_t *detail)
{
	size_t i, j;
	json_t *d, *part;

	json_array_foreach(detail, i, d) {
		char field[512] = "";
		size_t n = 0;

		json_array_foreach(json_object_get(d, "loc"), j, part) {
			int w = 0;

			if (j == 0 || n >= sizeof(field))
				continue;
			if (json_is_integer(part))
				w = snprintf(field + n, sizeof(field) - n,
					     "[%lld]",
					     (long long)json_integer_value(part));
			else if (json_is_string(part))
				w = snprintf(field + n, sizeof(field) - n,
					     "%s%s", n ? "." : "",
					     json_string_value(part));
			n += w > 0 ? (size_t)w : 0;
		}
		json_object_set_new(d, "error_code",
				    json_string("INVALID_INPUT"));
		json_object_set_new(d, "field", json_string(field));
	}
	kiln_reply_validation(resp, detail);
}

enum MHD_Result kiln_reply_send(struct MHD_Connection *conn,
				struct kiln_resp *resp)
{
	struct MHD_Response *r;
	char *text;
	size_t len;
	enum MHD_Result ret;
	char num[16];

	if (resp->has_file) {
		kiln_reply_drop(resp);
		r = MHD_create_response_from_fd((uint64_t)resp->file_size,
						resp->file_fd);
		if (r == NULL) {
			close(resp->file_fd);
			return MHD_NO;
		}
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
					resp->file_type);
		ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
		MHD_destroy_response(r);
		return ret;
	}
	if (resp->text != NULL) {
		text = resp->text;
		len = resp->text_len;
		resp->text = NULL;
	} else {
		if (resp->body == NULL)
			resp->body = json_object();
		text = kiln_jw_text(resp->body, &len);
	}
	kiln_reply_drop(resp);
	if (text == NULL)
		return MHD_NO;
	r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
				"application/json");
	if (resp->allow[0])
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, resp->allow);
	if (resp->is_auth_challenge)
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
					"Bearer");
	if (resp->retry_after_s > 0) {
		snprintf(num, sizeof(num), "%d", resp->retry_after_s);
		MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, num);
	}
	if (resp->is_replay)
		MHD_add_response_header(r, "Idempotent-Replayed", "true");
	ret = MHD_queue_response(conn, resp->status ? resp->status : 500, r);
	MHD_destroy_response(r);
	return ret;
}

struct kiln_store *kiln_reply_store(struct kiln_resp *resp)
{
	struct kiln_err err = {0};
	struct kiln_store *st = kiln_store_thread(&err);

	if (st == NULL) {
		err.code = KILN_EBUSY;
		kiln_reply_error(resp, &err);
	}
	return st;
}

json_t *kiln_reply_body(struct kiln_req *req, struct kiln_resp *resp)
{
	json_error_t jerr;
	json_t *body;

	if (req->body == NULL || req->body_len == 0) {
		kiln_reply_validation(resp,
				      json_pack("[{sss[s]ss}]", "type",
						"missing", "loc", "body", "msg",
						"Field required"));
		return NULL;
	}
	body = kiln_json_load(req->body, req->body_len, JSON_DECODE_ANY, &jerr);
	if (body == NULL) {
		kiln_reply_validation(
			resp, json_pack("[{sss[sI]sss{ss}}]", "type",
					"json_invalid", "loc", "body",
					(json_int_t)jerr.position, "msg",
					"JSON decode error", "ctx", "error",
					jerr.text));
		return NULL;
	}
	return body;
}

int kiln_reply_uuid(struct kiln_req *req, struct kiln_resp *resp,
		    const char *name)
{
	if (kiln_uuid_is_valid(req->path_id))
		return 0;
	kiln_reply_validation(
		resp, json_pack("[{sss[ss]ss}]", "type", "uuid_parsing", "loc",
				"path", name, "msg",
				"Input should be a valid UUID"));
	return -1;
}
