/*
 * http.c - the libmicrohttpd daemon.
 *
 * MHD runs its own thread pool; each request gets a small state record
 * (connection context) that accumulates the body.  The body is read here,
 * not by MHD's PostProcessor (CVE-2023-27371 in Debian 12's 0.9.75): bytes
 * are counted and the request is answered 413 as soon as the declared or
 * received size passes max_body_bytes.  A request with a body must be
 * JSON (415 otherwise).  Connection timeout, connection limits (global
 * and per IP) and a per-connection memory limit are always set.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kiln/http.h"
#include "kiln/log.h"

struct kiln_http {
	struct MHD_Daemon *daemon;
	struct kiln_app *app;
};

struct req_state {
	char *body;
	size_t len, cap;
	int is_too_big;
	int has_responded;
	/* A waiting answer (kiln_resp.wait_*), and who asked for it. */
	void (*wait_render)(struct kiln_req *req, struct kiln_resp *resp);
	char wait_id[KILN_UUID_LEN];
	int64_t wait_until_ms;
	int is_replay;
	int has_tenant;
	char tenant[KILN_TENANT_MAX + 1];
	/* An answer another thread sends (kiln_answer_later), while the
	 * connection is suspended for it. */
	struct kiln_later *later;
	int is_held; /* counted by kiln_waits_begin */
};

const char *kiln_req_query(const struct kiln_req *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND,
					   name);
}

const char *kiln_req_header(const struct kiln_req *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

static enum MHD_Result reply_too_big(struct MHD_Connection *conn,
				     size_t limit)
{
	struct kiln_resp resp = {0};

	kiln_reply_detail(&resp, MHD_HTTP_CONTENT_TOO_LARGE,
			  "Request body too large: limit is %zu bytes", limit);
	return kiln_reply_send(conn, &resp);
}

/* 1 if the Content-Type names JSON (parameters such as charset allowed). */
static int is_json_type(const char *ct)
{
	size_t n = strcspn(ct, ";");

	while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
		n--;
	if (n == strlen("application/json") &&
	    strncasecmp(ct, "application/json", n) == 0)
		return 1;
	/* application/<anything>+json, e.g. merge-patch+json */
	return n > 5 && strncasecmp(ct, "application/", 12) == 0 &&
	       strncasecmp(ct + n - 5, "+json", 5) == 0;
}

static int append_body(struct req_state *rs, const char *data, size_t n)
{
	if (rs->len + n + 1 > rs->cap) {
		size_t cap = rs->cap ? rs->cap : 1024;
		char *nb;

		while (cap < rs->len + n + 1)
			cap *= 2;
		nb = realloc(rs->body, cap);
		if (nb == NULL)
			return -1;
		rs->body = nb;
		rs->cap = cap;
	}
	memcpy(rs->body + rs->len, data, n);
	rs->len += n;
	rs->body[rs->len] = '\0';
	return 0;
}

/* A waiting answer's connection was resumed: render it again, as the
 * principal that asked. */
static void wake(struct kiln_http *h, struct req_state *rs,
		 struct kiln_req *req, struct kiln_resp *resp)
{
	req->path_id = rs->wait_id;
	req->is_waking = 1;
	req->wait_until_ms = rs->wait_until_ms;
	req->wait_expired = kiln_now_ms() >= rs->wait_until_ms ||
			    kiln_waits_stopping(h->app->waits);
	req->is_replay = rs->is_replay;
	req->principal.has_tenant = rs->has_tenant;
	if (rs->has_tenant)
		kiln_strlcpy(req->principal.tenant, rs->tenant,
			     sizeof(req->principal.tenant));
	req->scope.tenant = rs->has_tenant ? req->principal.tenant : NULL;
	rs->wait_render(req, resp);
}

/* Suspends the connection until the workflow resp waits for ends. */
static enum MHD_Result suspend(struct kiln_http *h, struct req_state *rs,
			       const struct kiln_req *req,
			       struct kiln_resp *resp)
{
	if (rs->wait_render == NULL)
		kiln_waits_begin(h->app->waits);
	rs->wait_render = resp->wait_render;
	kiln_strlcpy(rs->wait_id, resp->wait_id, sizeof(rs->wait_id));
	rs->wait_until_ms = resp->wait_until_ms;
	rs->is_replay = resp->is_replay;
	rs->has_tenant = req->principal.has_tenant;
	if (rs->has_tenant)
		kiln_strlcpy(rs->tenant, req->principal.tenant,
			     sizeof(rs->tenant));
	kiln_reply_drop(resp);
	MHD_suspend_connection(req->conn);
	kiln_waits_add(h->app->waits, req->conn, rs->wait_id,
		       rs->wait_until_ms, resp->wait_seq);
	return MHD_YES;
}

/* The handler's answer comes from another thread: sends it if it is
 * already there, else leaves the connection suspended until it is. */
static enum MHD_Result hold_for_later(struct kiln_http *h,
				      struct req_state *rs,
				      struct MHD_Connection *conn,
				      struct kiln_later *l)
{
	struct kiln_resp resp;

	if (kiln_later_hold(l)) {
		kiln_later_take(l, &resp);
		return kiln_reply_send(conn, &resp);
	}
	rs->later = l;
	if (!rs->is_held) {
		rs->is_held = 1;
		kiln_waits_begin(h->app->waits);
	}
	return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
				  const char *url, const char *method,
				  const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct kiln_http *h = cls;
	/* A batch carries its assets: it has a cap of its own. */
	size_t limit = strcmp(method, "POST") == 0 &&
				       strcmp(url, "/api/v1/batches") == 0
			       ? h->app->cfg->batch_max_body_bytes
			       : h->app->cfg->max_body_bytes;
	struct req_state *rs = *con_cls;
	struct kiln_resp resp = {0};
	struct kiln_req req = {0};
	const char *ct;

	if (rs == NULL) {
		const char *cl = MHD_lookup_connection_value(
			conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);

		rs = calloc(1, sizeof(*rs));
		if (rs == NULL)
			return MHD_NO;
		*con_cls = rs;
		if (cl != NULL && strtoull(cl, NULL, 10) > limit) {
			rs->is_too_big = 1;
			rs->has_responded = 1;
			return reply_too_big(conn, limit);
		}
		return MHD_YES;
	}
	if (*upload_data_size != 0) {
		if (!rs->is_too_big && rs->len + *upload_data_size > limit) {
			rs->is_too_big = 1;
			free(rs->body);
			rs->body = NULL;
			rs->len = rs->cap = 0;
			/* Answer now if MHD lets us; else after the body. */
			if (reply_too_big(conn, limit) == MHD_YES)
				rs->has_responded = 1;
		} else if (!rs->is_too_big &&
			   append_body(rs, upload_data, *upload_data_size) !=
				   0) {
			return MHD_NO;
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (rs->has_responded)
		return MHD_YES;
	if (rs->is_too_big)
		return reply_too_big(conn, limit);
	if (rs->later != NULL) {
		/* Resumed: the answer another thread sent. */
		kiln_later_take(rs->later, &resp);
		rs->later = NULL;
		return kiln_reply_send(conn, &resp);
	}

	ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
					 MHD_HTTP_HEADER_CONTENT_TYPE);
	if (rs->len > 0 && ct != NULL && !is_json_type(ct)) {
		kiln_reply_detail(&resp, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
				  "Content-Type must be application/json");
		return kiln_reply_send(conn, &resp);
	}
	req.app = h->app;
	req.conn = conn;
	req.method = method;
	req.path = url;
	req.body = rs->body;
	req.body_len = rs->len;
	if (rs->wait_render != NULL)
		wake(h, rs, &req, &resp);
	else
		kiln_router_dispatch(&req, &resp);
	if (resp.wait_render != NULL)
		return suspend(h, rs, &req, &resp);
	if (resp.later != NULL)
		return hold_for_later(h, rs, conn, resp.later);
	kiln_log(KILN_LOG_DEBUG, "%s %s -> %u", method, url, resp.status);
	return kiln_reply_send(conn, &resp);
}

static void on_completed(void *cls, struct MHD_Connection *conn,
			 void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct kiln_http *h = cls;
	struct req_state *rs = *con_cls;

	if (rs == NULL)
		return;
	if (rs->later != NULL)
		kiln_later_drop(rs->later);
	if (rs->wait_render != NULL || rs->is_held)
		kiln_waits_end(h->app->waits);
	free(rs->body);
	free(rs);
	*con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	kiln_log(KILN_LOG_WARN, "http: %s", msg);
}

static void stop_waits(struct kiln_app *app)
{
	kiln_waits_stop(app->waits);
	kiln_waits_free(app->waits);
	app->waits = NULL;
}

enum kiln_rc kiln_http_start(struct kiln_app *app, struct kiln_http **out,
			     int *bound_port, struct kiln_err *err)
{
	const struct kiln_config *cfg = app->cfg;
	struct addrinfo hints = {0}, *ai = NULL;
	struct kiln_http *h;
	const union MHD_DaemonInfo *info;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO |
			 MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
	char port[8];
	int rc;

	h = calloc(1, sizeof(*h));
	if (h == NULL)
		return kiln_err_set(err, KILN_ENOMEM, "", "out of memory");
	h->app = app;
	kiln_later_restart();
	app->waits = kiln_waits_start(err);
	if (app->waits == NULL) {
		free(h);
		return err ? err->code : KILN_EIO;
	}
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%d", cfg->listen_port);
	rc = getaddrinfo(cfg->listen_host, port, &hints, &ai);
	if (rc != 0) {
		stop_waits(app);
		free(h);
		return kiln_err_set(err, KILN_EINVAL, "listen",
				    "cannot resolve %s: %s", cfg->listen_host,
				    gai_strerror(rc));
	}
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	h->daemon = MHD_start_daemon(
		flags, (uint16_t)cfg->listen_port, NULL, NULL, on_request, h,
		/* First, so MHD logs nothing through its own logger. */
		MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h,
		MHD_OPTION_SOCK_ADDR, ai->ai_addr,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->http_threads,
		MHD_OPTION_CONNECTION_TIMEOUT,
		(unsigned)cfg->connection_timeout_s,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT,
		(unsigned)cfg->max_connections_per_ip,
		/* libmicrohttpd's default: request headers up to about
		 * 28 KB (431 beyond).  The pool is zeroed after every
		 * request, and 64 KiB cost 1.6 % of kilnd's CPU in W1 and
		 * a resident 64 KiB per open connection. */
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32 * 1024,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
		MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
		MHD_OPTION_END);
	freeaddrinfo(ai);
	if (h->daemon == NULL) {
		stop_waits(app);
		free(h);
		return kiln_err_set(err, KILN_EIO, "listen",
				    "cannot listen on %s:%d",
				    cfg->listen_host, cfg->listen_port);
	}
	info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
	*bound_port = info ? info->port : cfg->listen_port;
	*out = h;
	return KILN_OK;
}

void kiln_http_stop(struct kiln_http *h)
{
	if (h == NULL)
		return;
	/* Waiting connections answer first: MHD must not stop with
	 * suspended ones. */
	kiln_later_stop();
	kiln_waits_stop(h->app->waits);
	MHD_stop_daemon(h->daemon);
	kiln_waits_free(h->app->waits);
	h->app->waits = NULL;
	free(h);
}
