/*
 * kiln_bench.c - end-to-end benchmark driver for kilnd.
 *
 * 1. Makes a temporary directory (data dir, config, logs).
 * 2. Starts fake_provider (--delay-ms) on a free port, and kilnd with a
 *    config that maps GENERATION and REFINE to it (provider `concurrency`
 *    and global `max_inflight` when asked; if kilnd refuses them at
 *    start-up with "unknown key", they are left out and the output says so).
 * 3. Gets a bearer token from `kilnd token` (KILN_JWT_SECRET is set for
 *    both, so no secret file is involved).
 * 4. Creates N two-step workflows (generate -> refine, with an input
 *    mapping from generate's result_image_path to refine's base_image_url)
 *    over --clients keep-alive connections on one libcurl multi handle,
 *    while polling GET /api/v1/workflows/?status=COMPLETED&limit=1 every
 *    --poll-ms and reading `total`, until total == N.
 * 5. Prints the wall time (first create sent -> the poll that saw the
 *    last COMPLETED answered), workflows/s, steps/s, kilnd's CPU time
 *    (utime+stime from /proc/<pid>/stat, before the first create and after
 *    the last COMPLETED) and peak RSS (VmHWM from /proc/<pid>/status, read
 *    before the verification pass), and the driver's own CPU time.
 * 6. Verifies every workflow (paged list): COMPLETED, and refine's
 *    base_image_url is the fake provider's URL; reports the server-side
 *    span min(created_at) -> max(completed_at).
 * 7. Times a fixed single-thread load (SQLite in memory) before the
 *    fake provider starts and after the last COMPLETED: the machine's own
 *    speed at the time, which varies by up to 1.8 times between runs here.
 * 8. Stops kilnd and the fake provider (SIGTERM, then SIGKILL after 15 s)
 *    and removes the temporary directory (unless --keep).  The children
 *    also get PR_SET_PDEATHSIG(SIGKILL), so they die with the driver.
 *
 * Figures are printed, never asserted; --target-* only adds "met"/"NOT met"
 * to the lines.  Exit status: 0 when every workflow completed, 1 if not,
 * 2 on a usage or set-up error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <sqlite3.h>

#define PROVIDER_URL_RESULT "https://cdn.example/x.png"

static const char WORKFLOW_BODY[] =
	"{\"description\":\"Generate and refine fashion images\","
	"\"name\":\"Fashion Image Pipeline\",\"origin_instance\":\"bench\","
	"\"steps\":["
	"{\"config\":{\"height\":1024,"
	"\"prompt\":\"fashion model wearing elegant dress\",\"width\":1024},"
	"\"id\":\"generate\",\"task_type\":\"GENERATION\"},"
	"{\"config\":{\"upscale_factor\":2.0},\"depends_on\":[\"generate\"],"
	"\"id\":\"refine\",\"input_mappings\":[{\"from_field\":"
	"\"result_image_path\",\"from_step\":\"generate\",\"to_field\":"
	"\"base_image_url\"}],\"task_type\":\"REFINE\"}]}";

struct opts {
	const char *kilnd, *fake, *label, *profile_cmd, *kilnd_wrap;
	long n, delay_ms, concurrency, max_inflight, clients, workers;
	long http_threads, fake_threads, poll_ms, timeout_s;
	double target_wps, target_wall_s, target_rss_mb;
	int keep, verify;
};

static struct {
	pid_t kilnd, fake, profiler;
	char tmp[256];
	int keep;
} g_children;

static volatile sig_atomic_t g_stop;

/* ------------------------------------------------------------------ */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The machine reference: 100,000 rows into an indexed table of an
 * in-memory SQLite database, on this thread alone; ms, -1 on error.  The
 * same work every time, so its time says how fast the machine is now
 * (the host's other guests share its cores and caches). */
static double ref_load_ms(void)
{
	static const char sql[] =
		"CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT, c INTEGER);"
		"CREATE INDEX t_c ON t (c);"
		"WITH RECURSIVE r (x) AS (SELECT 1 UNION ALL SELECT x + 1"
		" FROM r WHERE x < 100000)"
		" INSERT INTO t SELECT x, printf('%040d', x * 7919),"
		" (x * 2654435761) % 100003 FROM r;";
	sqlite3 *db = NULL;
	double t0 = now_s();
	int src = sqlite3_open(":memory:", &db);

	if (src == SQLITE_OK)
		src = sqlite3_exec(db, sql, NULL, NULL, NULL);
	sqlite3_close(db);
	return src == SQLITE_OK ? (now_s() - t0) * 1000.0 : -1.0;
}

#define REF_CPUS 8

/* The reference load on each CPU in turn (at most REF_CPUS), pinned:
 * one virtual CPU can be slow while the other is not.  Fills per_cpu
 * (-1 past the last CPU) and returns the slowest time. */
static double machine_ref_ms(double per_cpu[REF_CPUS])
{
	cpu_set_t was, one;
	double worst = -1.0;
	int cpu;

	for (cpu = 0; cpu < REF_CPUS; cpu++)
		per_cpu[cpu] = -1.0;
	if (sched_getaffinity(0, sizeof(was), &was) != 0)
		return per_cpu[0] = ref_load_ms();
	for (cpu = 0; cpu < REF_CPUS; cpu++) {
		if (!CPU_ISSET(cpu, &was))
			continue;
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		if (sched_setaffinity(0, sizeof(one), &one) != 0)
			continue;
		per_cpu[cpu] = ref_load_ms();
		if (per_cpu[cpu] > worst)
			worst = per_cpu[cpu];
	}
	sched_setaffinity(0, sizeof(was), &was);
	return worst >= 0 ? worst : (per_cpu[0] = ref_load_ms());
}

/* "112/115" for the CPUs measured. */
static void format_per_cpu(const double per_cpu[REF_CPUS], char *out,
			   size_t size)
{
	size_t used = 0;
	int cpu;

	out[0] = '\0';
	for (cpu = 0; cpu < REF_CPUS && used < size; cpu++) {
		if (per_cpu[cpu] < 0)
			continue;
		used += (size_t)snprintf(out + used, size - used, "%s%.0f",
					 used ? "/" : "", per_cpu[cpu]);
	}
}

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("kiln_bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

/* Saves every thread's stack of pid (gdb, when installed) to
 * /tmp/kiln-bench-<what>-<pid>.txt: where kilnd hangs, for a bug report. */
static void dump_stacks(pid_t pid, const char *what)
{
	char cmd[256];

	if (access("/usr/bin/gdb", X_OK) != 0)
		return;
	snprintf(cmd, sizeof(cmd),
		 "gdb -p %d -batch -ex 'thread apply all bt'"
		 " >/tmp/kiln-bench-%s-%d.txt 2>&1",
		 (int)pid, what, (int)pid);
	if (system(cmd) == 0)
		fprintf(stderr, "kiln_bench: kilnd's thread stacks:"
			" /tmp/kiln-bench-%s-%d.txt\n", what, (int)pid);
}

/* SIGTERM, then SIGKILL after grace_s; reaps the child. */
static void stop_child(pid_t *pid, const char *name, int sig, double grace_s)
{
	double until;
	int status;

	if (*pid <= 0)
		return;
	kill(*pid, sig);
	until = now_s() + grace_s;
	while (now_s() < until) {
		pid_t r = waitpid(*pid, &status, WNOHANG);

		if (r == *pid || (r < 0 && errno == ECHILD)) {
			*pid = 0;
			return;
		}
		usleep(20000);
	}
	fprintf(stderr, "kiln_bench: %s (pid %d) still alive %.0f s after"
		" signal %d: SIGKILL\n", name, (int)*pid, grace_s, sig);
	if (strcmp(name, "kilnd") == 0)
		dump_stacks(*pid, "hang");
	kill(*pid, SIGKILL);
	waitpid(*pid, &status, 0);
	*pid = 0;
}

static void cleanup(void)
{
	if (g_children.profiler > 0) /* perf record: SIGINT writes the file */
		stop_child(&g_children.profiler, "profiler", SIGINT, 30);
	stop_child(&g_children.kilnd, "kilnd", SIGTERM, 15);
	stop_child(&g_children.fake, "fake_provider", SIGTERM, 15);
	if (g_children.tmp[0] && !g_children.keep)
		nftw(g_children.tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	else if (g_children.tmp[0])
		fprintf(stderr, "kiln_bench: kept %s\n", g_children.tmp);
	g_children.tmp[0] = '\0';
}

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

/* fork+exec with stdout to out_fd (or the log), stderr to the log file. */
static pid_t spawn(char *const argv[], const char *log_path, int out_fd,
		   int new_pgrp)
{
	pid_t parent = getpid(), pid = fork();

	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);

		if (new_pgrp)
			setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		if (fd >= 0) {
			dup2(fd, 2);
			dup2(out_fd >= 0 ? out_fd : fd, 1);
			close(fd);
		}
		if (out_fd >= 0)
			close(out_fd);
		execvp(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) != 0)
		die("cannot find a free port: %s", strerror(errno));
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* ------------------------------------------------------------------ */
/* /proc readings */

struct cpu {
	double user, sys;
};

static int read_cpu(pid_t pid, struct cpu *c)
{
	char path[64], buf[4096], *p;
	unsigned long ut, st;
	FILE *f;
	size_t n;
	long tck = sysconf(_SC_CLK_TCK);

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* comm may hold spaces */
	if (p == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
		   &ut, &st) != 2)
		return -1;
	c->user = (double)ut / (double)tck;
	c->sys = (double)st / (double)tck;
	return 0;
}

/* A "Key:   N kB" line of /proc/<pid>/status, in kB; -1 if absent. */
static long read_status_kb(pid_t pid, const char *key)
{
	char path[64], line[256];
	size_t klen = strlen(key);
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			v = strtol(line + klen + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static double self_cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* ------------------------------------------------------------------ */
/* HTTP */

struct buf {
	char *p;
	size_t len, cap;
};

static size_t on_write(char *data, size_t size, size_t nmemb, void *ud)
{
	struct buf *b = ud;
	size_t n = size * nmemb;

	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (p == NULL)
			return 0;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	return n;
}

static CURL *easy_new(struct buf *b, struct curl_slist *hdrs)
{
	CURL *e = curl_easy_init();

	if (e == NULL)
		die("curl_easy_init failed");
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(e, CURLOPT_PRIVATE, b);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, 120L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 10L);
	if (hdrs)
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
	return e;
}

/* One blocking GET; returns the HTTP status (0 on a transport error). */
static long http_get(const char *url, struct curl_slist *hdrs, struct buf *b)
{
	CURL *e;
	long code = 0;

	b->len = 0;
	if (b->p)
		b->p[0] = '\0';
	e = easy_new(b, hdrs);
	curl_easy_setopt(e, CURLOPT_URL, url);
	if (curl_easy_perform(e) == CURLE_OK)
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(e);
	return code;
}

static long json_total(const struct buf *b)
{
	json_t *j = json_loadb(b->p ? b->p : "", b->len, 0, NULL);
	long t = -1;

	if (json_is_integer(json_object_get(j, "total")))
		t = (long)json_integer_value(json_object_get(j, "total"));
	json_decref(j);
	return t;
}

static long count_status(const char *base, struct curl_slist *hdrs,
			 const char *status)
{
	char url[512];
	struct buf b = {0};
	long t = -1;

	snprintf(url, sizeof(url), "%s/api/v1/workflows/?status=%s&limit=1",
		 base, status);
	if (http_get(url, hdrs, &b) == 200)
		t = json_total(&b);
	free(b.p);
	return t;
}

/* ------------------------------------------------------------------ */
/* set-up */

static void write_config(const char *path, const struct opts *o,
			 int kiln_port, int fake_port, const char *data_dir,
			 int with_new_keys)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
		die("cannot write %s: %s", path, strerror(errno));
	fprintf(f, "{\n  \"listen\": \"127.0.0.1:%d\",\n"
		   "  \"data_dir\": \"%s\",\n  \"log_level\": \"warn\",\n"
		   "  \"max_connections\": 4096,\n"
		   "  \"max_connections_per_ip\": 4096,\n",
		kiln_port, data_dir);
	if (o->workers > 0)
		fprintf(f, "  \"workers\": %ld,\n", o->workers);
	if (o->http_threads > 0)
		fprintf(f, "  \"http_threads\": %ld,\n", o->http_threads);
	if (with_new_keys && o->max_inflight > 0)
		fprintf(f, "  \"max_inflight\": %ld,\n", o->max_inflight);
	fprintf(f, "  \"providers\": {\n    \"fake\": {\n"
		   "      \"type\": \"http\",\n"
		   "      \"url\": \"http://127.0.0.1:%d/generate\",\n"
		   "      \"timeout_s\": 120,\n      \"connect_timeout_s\": 30",
		fake_port);
	if (with_new_keys && o->concurrency > 0)
		fprintf(f, ",\n      \"concurrency\": %ld", o->concurrency);
	fprintf(f, "\n    }\n  },\n  \"task_types\": {\"GENERATION\": \"fake\","
		   " \"REFINE\": \"fake\"}\n}\n");
	fclose(f);
}

static int file_contains(const char *path, const char *needle)
{
	char *text;
	long n;
	int found = 0;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return 0;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	text = malloc((size_t)n + 1);
	if (text) {
		n = (long)fread(text, 1, (size_t)n, f);
		text[n] = '\0';
		found = strstr(text, needle) != NULL;
		free(text);
	}
	fclose(f);
	return found;
}

static void print_file_tail(const char *path)
{
	char line[1024];
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f))
		fprintf(stderr, "  | %s", line);
	fclose(f);
}

/* Starts kilnd and waits until /healthz answers 200.  Returns 0, or the
 * exit status when kilnd stopped at start-up. */
static int start_kilnd(const struct opts *o, const char *cfg,
		       const char *log, const char *base)
{
	char *argv[32], *wrap = o->kilnd_wrap ? strdup(o->kilnd_wrap) : NULL;
	char url[300], *tok, *save = NULL;
	struct buf b = {0};
	double until = now_s() + 60;
	int n = 0;

	/* --kilnd-wrap "valgrind --tool=massif ...": split on spaces. */
	for (tok = wrap ? strtok_r(wrap, " ", &save) : NULL; tok && n < 28;
	     tok = strtok_r(NULL, " ", &save))
		argv[n++] = tok;
	argv[n++] = (char *)o->kilnd;
	argv[n++] = "--config";
	argv[n++] = (char *)cfg;
	argv[n] = NULL;
	g_children.kilnd = spawn(argv, log, -1, 0);
	free(wrap);
	snprintf(url, sizeof(url), "%s/healthz", base);
	while (now_s() < until && !g_stop) {
		int status;

		if (waitpid(g_children.kilnd, &status, WNOHANG) ==
		    g_children.kilnd) {
			g_children.kilnd = 0;
			free(b.p);
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
		}
		if (http_get(url, NULL, &b) == 200) {
			free(b.p);
			return 0;
		}
		usleep(20000);
	}
	free(b.p);
	die("kilnd did not answer /healthz within 60 s (log: %s)", log);
	return -1;
}

static int start_fake(const struct opts *o, const char *log)
{
	char delay[32], threads[32], line[64];
	char *argv[] = {(char *)o->fake, "--port", "0", "--delay-ms", delay,
			"--threads", threads, "--quiet", NULL};
	int pfd[2], port = 0;
	struct pollfd p;
	ssize_t n;
	size_t len = 0;

	snprintf(delay, sizeof(delay), "%ld", o->delay_ms);
	snprintf(threads, sizeof(threads), "%ld", o->fake_threads);
	if (pipe(pfd) != 0)
		die("pipe: %s", strerror(errno));
	g_children.fake = spawn(argv, log, pfd[1], 0);
	close(pfd[1]);
	p.fd = pfd[0];
	p.events = POLLIN;
	while (len < sizeof(line) - 1 && poll(&p, 1, 10000) > 0) {
		n = read(pfd[0], line + len, sizeof(line) - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		line[len] = '\0';
		if (strchr(line, '\n'))
			break;
	}
	close(pfd[0]);
	line[len] = '\0';
	if (sscanf(line, "port %d", &port) != 1 || port <= 0) {
		print_file_tail(log);
		die("fake provider did not start (%s)", o->fake);
	}
	return port;
}

static char *mint_token(const struct opts *o, const char *cfg)
{
	char cmd[1024], tok[2048];
	FILE *p;
	size_t n;

	snprintf(cmd, sizeof(cmd), "'%s' token --config '%s' --ttl 86400",
		 o->kilnd, cfg);
	p = popen(cmd, "r");
	if (p == NULL)
		die("popen: %s", strerror(errno));
	n = fread(tok, 1, sizeof(tok) - 1, p);
	if (pclose(p) != 0 || n == 0)
		die("`%s` failed", cmd);
	tok[n] = '\0';
	tok[strcspn(tok, "\r\n")] = '\0';
	return strdup(tok);
}

/* ------------------------------------------------------------------ */
/* verification */

static int parse_ts(const char *s, double *out)
{
	struct tm tm = {0};
	int ms = 0;

	if (s == NULL || sscanf(s, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year,
				&tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
				&tm.tm_min, &tm.tm_sec, &ms) < 6)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	*out = (double)timegm(&tm) + ms / 1000.0;
	return 0;
}

struct verify {
	long seen, completed, mapped, bad;
	double first_created, last_completed;
};

static void verify_all(const char *base, struct curl_slist *hdrs, long n,
		       struct verify *v)
{
	char url[512];
	struct buf b = {0};
	long skip = 0;

	memset(v, 0, sizeof(*v));
	v->first_created = 1e18;
	while (skip < n) {
		json_t *j, *wfs, *wf;
		size_t i;

		snprintf(url, sizeof(url),
			 "%s/api/v1/workflows/?skip=%ld&limit=1000", base,
			 skip);
		if (http_get(url, hdrs, &b) != 200)
			break;
		j = json_loadb(b.p, b.len, 0, NULL);
		wfs = json_object_get(j, "workflows");
		if (!json_is_array(wfs) || json_array_size(wfs) == 0) {
			json_decref(j);
			break;
		}
		json_array_foreach(wfs, i, wf) {
			const char *st = json_string_value(
				json_object_get(wf, "status"));
			json_t *steps = json_object_get(wf, "steps"), *s;
			size_t k;
			double t;

			v->seen++;
			if (st && strcmp(st, "COMPLETED") == 0)
				v->completed++;
			if (parse_ts(json_string_value(json_object_get(
					     wf, "created_at")),
				     &t) == 0 &&
			    t < v->first_created)
				v->first_created = t;
			if (parse_ts(json_string_value(json_object_get(
					     wf, "completed_at")),
				     &t) == 0 &&
			    t > v->last_completed)
				v->last_completed = t;
			json_array_foreach(steps, k, s) {
				const char *id = json_string_value(
					json_object_get(s, "step_id"));
				const char *m = json_string_value(
					json_object_get(
						json_object_get(s, "result"),
						"base_image_url"));

				if (id && strcmp(id, "refine") == 0) {
					if (m && strcmp(m, PROVIDER_URL_RESULT)
							 == 0)
						v->mapped++;
					else
						v->bad++;
				}
			}
		}
		skip += (long)json_array_size(wfs);
		json_decref(j);
	}
	free(b.p);
}

/* ------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fputs("usage: kiln_bench --kilnd PATH --fake PATH [options]\n"
	      "  --label TEXT          heading of the report\n"
	      "  --n N                 workflows (default 2000)\n"
	      "  --delay-ms D          provider delay per call (default 0)\n"
	      "  --concurrency C       provider `concurrency` (0: omit)\n"
	      "  --max-inflight M      global `max_inflight` (0: omit)\n"
	      "  --clients K           concurrent create connections"
	      " (default 32)\n"
	      "  --workers W           kilnd `workers` (0: kilnd's default)\n"
	      "  --http-threads H      kilnd `http_threads` (0: default)\n"
	      "  --fake-threads T      fake provider threads (default 1)\n"
	      "  --poll-ms P           completion poll interval (default 10)\n"
	      "  --timeout-s S         give up after S seconds (default 300)\n"
	      "  --target-wps X        print met/NOT met against X wf/s\n"
	      "  --target-wall-s X     ... against a wall time of X s\n"
	      "  --target-rss-mb X     ... against a peak RSS of X MB\n"
	      "  --profile-cmd CMD     run `sh -c CMD` (KILND_PID set) from\n"
	      "                        just before the first create until the\n"
	      "                        last COMPLETED; SIGINT stops it\n"
	      "  --kilnd-wrap CMD      run kilnd under CMD (split on spaces),\n"
	      "                        e.g. \"valgrind --tool=massif\"\n"
	      "  --no-verify           skip the per-workflow check\n"
	      "  --keep                keep the temporary directory\n",
	      f);
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
	int i;

	*o = (struct opts){.n = 2000, .clients = 32, .fake_threads = 1,
			   .poll_ms = 10, .timeout_s = 300, .verify = 1,
			   .label = "kilnd benchmark"};
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--keep") == 0) {
			o->keep = 1;
			continue;
		}
		if (strcmp(a, "--no-verify") == 0) {
			o->verify = 0;
			continue;
		}
		if (strcmp(a, "--help") == 0) {
			usage(stdout);
			exit(0);
		}
		if (v == NULL) {
			usage(stderr);
			exit(2);
		}
		i++;
		if (strcmp(a, "--kilnd") == 0)
			o->kilnd = v;
		else if (strcmp(a, "--fake") == 0)
			o->fake = v;
		else if (strcmp(a, "--label") == 0)
			o->label = v;
		else if (strcmp(a, "--kilnd-wrap") == 0)
			o->kilnd_wrap = v;
		else if (strcmp(a, "--profile-cmd") == 0)
			o->profile_cmd = v;
		else if (strcmp(a, "--n") == 0)
			o->n = atol(v);
		else if (strcmp(a, "--delay-ms") == 0)
			o->delay_ms = atol(v);
		else if (strcmp(a, "--concurrency") == 0)
			o->concurrency = atol(v);
		else if (strcmp(a, "--max-inflight") == 0)
			o->max_inflight = atol(v);
		else if (strcmp(a, "--clients") == 0)
			o->clients = atol(v);
		else if (strcmp(a, "--workers") == 0)
			o->workers = atol(v);
		else if (strcmp(a, "--http-threads") == 0)
			o->http_threads = atol(v);
		else if (strcmp(a, "--fake-threads") == 0)
			o->fake_threads = atol(v);
		else if (strcmp(a, "--poll-ms") == 0)
			o->poll_ms = atol(v);
		else if (strcmp(a, "--timeout-s") == 0)
			o->timeout_s = atol(v);
		else if (strcmp(a, "--target-wps") == 0)
			o->target_wps = atof(v);
		else if (strcmp(a, "--target-wall-s") == 0)
			o->target_wall_s = atof(v);
		else if (strcmp(a, "--target-rss-mb") == 0)
			o->target_rss_mb = atof(v);
		else {
			usage(stderr);
			exit(2);
		}
	}
	if (o->kilnd == NULL || o->fake == NULL || o->n < 1 ||
	    o->clients < 1) {
		usage(stderr);
		exit(2);
	}
	if (o->clients > o->n)
		o->clients = o->n;
}

static const char *verdict(int met)
{
	return met ? "met" : "NOT met";
}

int main(int argc, char **argv)
{
	struct opts o;
	char data_dir[300], cfg[300], klog[300], flog[300], base[64];
	char create_url[128], poll_url[160], auth[2200], secret[65];
	char notes[512] = "";
	int fake_port, kiln_port, rc, i;
	struct curl_slist *hdrs = NULL, *post_hdrs = NULL;
	struct rlimit rl;
	struct sigaction sa = {0};
	CURLM *multi;
	CURL **creators, *poller;
	struct buf *cbufs, pbuf = {0};
	long sent = 0, created = 0, create_errors = 0, completed = 0;
	long creating = 0, expected, polls = 0;
	int poll_busy = 0, kilnd_died = 0;
	double t0, t_created = 0, t_done = 0, next_poll, deadline;
	double drv0, drv1, ref0, ref1, ref0_cpu[REF_CPUS], ref1_cpu[REF_CPUS];
	char ref0_text[64], ref1_text[64];
	struct cpu c0 = {0}, c1 = {0}, f0 = {0}, f1 = {0};
	long hwm_kb, rss_kb, rss0_kb, failed = -1, running = -1;
	char *token;
	unsigned seed;

	parse_opts(argc, argv, &o);
	g_children.keep = o.keep;

	/* kilnd inherits this: 10,000 in-flight calls need 10,000+ fds. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	atexit(cleanup);
	curl_global_init(CURL_GLOBAL_DEFAULT);

	snprintf(g_children.tmp, sizeof(g_children.tmp),
		 "/tmp/kiln-bench-XXXXXX");
	if (mkdtemp(g_children.tmp) == NULL)
		die("mkdtemp: %s", strerror(errno));
	snprintf(data_dir, sizeof(data_dir), "%s/data", g_children.tmp);
	snprintf(cfg, sizeof(cfg), "%s/kilnd.json", g_children.tmp);
	snprintf(klog, sizeof(klog), "%s/kilnd.log", g_children.tmp);
	snprintf(flog, sizeof(flog), "%s/fake_provider.log", g_children.tmp);

	seed = (unsigned)getpid() ^ (unsigned)time(NULL);
	for (i = 0; i < 64; i++)
		secret[i] = "0123456789abcdef"[rand_r(&seed) & 15];
	secret[64] = '\0';
	setenv("KILN_JWT_SECRET", secret, 1);

	ref0 = machine_ref_ms(ref0_cpu);
	fake_port = start_fake(&o, flog);
	kiln_port = free_port();
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", kiln_port);
	write_config(cfg, &o, kiln_port, fake_port, data_dir, 1);
	rc = start_kilnd(&o, cfg, klog, base);
	if (rc == 2 && file_contains(klog, "unknown key") &&
	    (o.concurrency > 0 || o.max_inflight > 0)) {
		snprintf(notes, sizeof(notes),
			 "kilnd refused `concurrency`/`max_inflight`"
			 " (\"unknown key\"): run WITHOUT them");
		fprintf(stderr, "kiln_bench: note: %s\n", notes);
		write_config(cfg, &o, kiln_port, fake_port, data_dir, 0);
		rc = start_kilnd(&o, cfg, klog, base);
	}
	if (rc != 0) {
		print_file_tail(klog);
		die("kilnd exited with status %d at start-up", rc);
	}
	token = mint_token(&o, cfg);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	free(token);
	hdrs = curl_slist_append(hdrs, auth);
	post_hdrs = curl_slist_append(post_hdrs, auth);
	post_hdrs = curl_slist_append(post_hdrs,
				      "Content-Type: application/json");
	post_hdrs = curl_slist_append(post_hdrs, "Expect:");
	snprintf(create_url, sizeof(create_url), "%s/api/v1/workflows/",
		 base);
	snprintf(poll_url, sizeof(poll_url),
		 "%s/api/v1/workflows/?status=COMPLETED&limit=1", base);

	/* Warm-up: one authenticated call, so the first create is not
	 * paying for anything lazy. */
	if (count_status(base, hdrs, "COMPLETED") != 0)
		die("GET /api/v1/workflows/ failed or the store is not empty");

	multi = curl_multi_init();
	curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS,
			  o.clients + 1);
	creators = calloc((size_t)o.clients, sizeof(*creators));
	cbufs = calloc((size_t)o.clients, sizeof(*cbufs));
	if (creators == NULL || cbufs == NULL)
		die("out of memory");
	for (i = 0; i < o.clients; i++) {
		creators[i] = easy_new(&cbufs[i], post_hdrs);
		curl_easy_setopt(creators[i], CURLOPT_URL, create_url);
		curl_easy_setopt(creators[i], CURLOPT_POSTFIELDS,
				 WORKFLOW_BODY);
		curl_easy_setopt(creators[i], CURLOPT_POSTFIELDSIZE,
				 (long)sizeof(WORKFLOW_BODY) - 1);
	}
	poller = easy_new(&pbuf, hdrs);
	curl_easy_setopt(poller, CURLOPT_URL, poll_url);

	if (o.profile_cmd) {
		char pid_s[32];
		char *pargv[] = {"sh", "-c", (char *)o.profile_cmd, NULL};

		snprintf(pid_s, sizeof(pid_s), "%d", (int)g_children.kilnd);
		setenv("KILND_PID", pid_s, 1);
		g_children.profiler = spawn(pargv, "/dev/null", 2, 1);
		sleep(1); /* let perf attach */
	}

	/* ---- the measured part ---- */
	rss0_kb = read_status_kb(g_children.kilnd, "VmRSS");
	if (read_cpu(g_children.kilnd, &c0) != 0)
		die("cannot read /proc/%d/stat", (int)g_children.kilnd);
	if (read_cpu(g_children.fake, &f0) != 0)
		memset(&f0, 0, sizeof(f0));
	drv0 = self_cpu();
	t0 = now_s();
	next_poll = t0;
	deadline = t0 + (double)o.timeout_s;
	for (i = 0; i < o.clients; i++) {
		curl_multi_add_handle(multi, creators[i]);
		sent++;
		creating++;
	}
	expected = o.n;
	while (!g_stop) {
		int running_h, msgs;
		CURLMsg *m;
		double now;

		curl_multi_perform(multi, &running_h);
		while ((m = curl_multi_info_read(multi, &msgs)) != NULL) {
			CURL *e = m->easy_handle;
			long code = 0;

			if (m->msg != CURLMSG_DONE)
				continue;
			if (m->data.result == CURLE_OK)
				curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE,
						  &code);
			curl_multi_remove_handle(multi, e);
			if (e == poller) {
				long t;

				poll_busy = 0;
				polls++;
				t = code == 200 ? json_total(&pbuf) : -1;
				pbuf.len = 0;
				if (t >= 0)
					completed = t;
				if (completed >= expected &&
				    sent >= o.n && creating == 0) {
					t_done = now_s();
					break;
				}
				continue;
			}
			{
				struct buf *b;

				curl_easy_getinfo(e, CURLINFO_PRIVATE,
						  (char **)&b);
				creating--;
				if (code == 201) {
					created++;
				} else {
					create_errors++;
					expected--;
					if (create_errors <= 5)
						fprintf(stderr,
							"kiln_bench: create"
							" failed: HTTP %ld"
							" (%s) %.300s\n",
							code,
							curl_easy_strerror(
								m->data.result),
							b->p ? b->p : "");
				}
				b->len = 0;
				if (sent < o.n) {
					curl_multi_add_handle(multi, e);
					sent++;
					creating++;
				} else if (creating == 0) {
					t_created = now_s();
				}
			}
		}
		if (t_done > 0)
			break;
		{
			int status;

			if (waitpid(g_children.kilnd, &status, WNOHANG) ==
			    g_children.kilnd) {
				if (WIFSIGNALED(status))
					fprintf(stderr, "kiln_bench: kilnd DIED"
						" during the run: signal %d"
						" (%s)\n", WTERMSIG(status),
						strsignal(WTERMSIG(status)));
				else
					fprintf(stderr, "kiln_bench: kilnd"
						" EXITED during the run:"
						" status %d\n",
						WEXITSTATUS(status));
				g_children.kilnd = 0;
				kilnd_died = 1;
				print_file_tail(klog);
				break;
			}
		}
		now = now_s();
		if (now > deadline) {
			fprintf(stderr, "kiln_bench: timed out after %ld s\n",
				o.timeout_s);
			dump_stacks(g_children.kilnd, "stall");
			break;
		}
		if (!poll_busy && now >= next_poll) {
			curl_multi_add_handle(multi, poller);
			poll_busy = 1;
			next_poll = now + o.poll_ms / 1000.0;
		}
		{
			int ms = poll_busy ? 100
					   : (int)((next_poll - now) * 1000) + 1;

			curl_multi_poll(multi, NULL, 0, ms, NULL);
		}
	}
	drv1 = self_cpu();
	if (read_cpu(g_children.fake, &f1) != 0)
		f1 = f0;
	if (kilnd_died || read_cpu(g_children.kilnd, &c1) != 0)
		c1 = c0;
	hwm_kb = kilnd_died ? -1 : read_status_kb(g_children.kilnd, "VmHWM");
	rss_kb = kilnd_died ? -1 : read_status_kb(g_children.kilnd, "VmRSS");
	/* ---- end of the measured part ---- */

	if (g_children.profiler > 0)
		stop_child(&g_children.profiler, "profiler", SIGINT, 60);

	for (i = 0; i < o.clients; i++) {
		curl_multi_remove_handle(multi, creators[i]);
		curl_easy_cleanup(creators[i]);
		free(cbufs[i].p);
	}
	curl_multi_remove_handle(multi, poller);
	curl_easy_cleanup(poller);
	free(pbuf.p);
	free(creators);
	free(cbufs);
	curl_multi_cleanup(multi);

	ref1 = machine_ref_ms(ref1_cpu);
	if (t_done == 0 && !kilnd_died) { /* not finished: where it stands */
		completed = count_status(base, hdrs, "COMPLETED");
		running = count_status(base, hdrs, "RUNNING");
	}
	if (!kilnd_died)
		failed = count_status(base, hdrs, "FAILED");

	{
		double wall = (t_done > 0 ? t_done : now_s()) - t0;
		double cpu = (c1.user + c1.sys) - (c0.user + c0.sys);
		double steps = 2.0 * (double)completed;
		double wps = (double)completed / wall;
		double hwm_mb = hwm_kb / 1024.0;
		struct {
			long requests, suspended_peak, connections_peak;
		} fs = {-1, -1, -1};
		struct buf b = {0};
		char url[128];

		snprintf(url, sizeof(url), "http://127.0.0.1:%d/stats",
			 fake_port);
		if (http_get(url, NULL, &b) == 200) {
			json_t *j = json_loadb(b.p, b.len, 0, NULL);

			fs.requests = (long)json_integer_value(
				json_object_get(j, "requests"));
			fs.suspended_peak = (long)json_integer_value(
				json_object_get(j, "suspended_peak"));
			fs.connections_peak = (long)json_integer_value(
				json_object_get(j, "connections_peak"));
			json_decref(j);
		}
		free(b.p);

		printf("== %s ==\n", o.label);
		{
			char conc[48] = "default (100)", inf[48] = "default";

			if (o.concurrency > 0)
				snprintf(conc, sizeof(conc), "%ld%s",
					 o.concurrency,
					 notes[0] ? " (NOT applied)" : "");
			if (o.max_inflight > 0)
				snprintf(inf, sizeof(inf), "%ld%s",
					 o.max_inflight,
					 notes[0] ? " (NOT applied)" : "");
			printf("  setup           %ld workflows x 2 steps;"
			       " provider delay %ld ms, concurrency %s;"
			       " max_inflight %s; %ld create connections;"
			       " poll every %ld ms\n",
			       o.n, o.delay_ms, conc, inf, o.clients,
			       o.poll_ms);
		}
		if (notes[0])
			printf("  NOTE            %s\n", notes);
		if (t_created > 0)
			printf("  created         %ld of %ld (HTTP errors %ld) in"
			       " %.3f s = %.0f creates/s\n",
			       created, o.n, create_errors, t_created - t0,
			       created / (t_created - t0));
		else
			printf("  created         %ld of %ld (HTTP errors %ld),"
			       " not all answered\n",
			       created, o.n, create_errors);
		if (kilnd_died)
			printf("  KILND DIED      during the run (see above);"
			       " the figures below are void\n");
		printf("  completed       %ld of %ld%s (FAILED %ld%s)\n",
		       completed, expected,
		       t_done > 0 ? "" : "  <-- DID NOT FINISH", failed,
		       running >= 0 ? ", see RUNNING below" : "");
		if (running >= 0)
			printf("  still RUNNING   %ld\n", running);
		printf("  wall time       %.3f s (first create -> poll that"
		       " saw the last COMPLETED, %ld polls)",
		       wall, polls);
		if (o.target_wall_s > 0)
			printf("   target <= %.1f s: %s", o.target_wall_s,
			       verdict(t_done > 0 && wall <= o.target_wall_s));
		printf("\n");
		if (t_created > 0 && t_done > 0)
			printf("  after creates   %.3f s (last create answered"
			       " -> last COMPLETED seen)\n",
			       t_done - t_created);
		printf("  workflows/s     %.0f", wps);
		if (o.target_wps > 0)
			printf("   target >= %.0f: %s", o.target_wps,
			       verdict(t_done > 0 && wps >= o.target_wps));
		printf("\n  steps/s         %.0f\n", steps / wall);
		printf("  kilnd CPU       %.2f s (user %.2f, sys %.2f) ="
		       " %.3f CPU-s per 1,000 steps; %.0f%% of one core"
		       " (%ld cores)\n",
		       cpu, c1.user - c0.user, c1.sys - c0.sys,
		       steps > 0 ? cpu / (steps / 1000.0) : 0.0,
		       100.0 * cpu / wall, sysconf(_SC_NPROCESSORS_ONLN));
		printf("  kilnd peak RSS  %.1f MB (VmHWM; VmRSS %.1f MB before"
		       " the first create, %.1f MB at the end)",
		       hwm_mb, rss0_kb / 1024.0, rss_kb / 1024.0);
		if (o.target_rss_mb > 0)
			printf("   target < %.0f MB: %s", o.target_rss_mb,
			       verdict(hwm_kb > 0 &&
				       hwm_mb < o.target_rss_mb));
		printf("\n");
		printf("  provider        %ld requests, peak %ld suspended"
		       " (answers held back at once), peak %ld connections;"
		       " CPU %.2f s\n",
		       fs.requests, fs.suspended_peak, fs.connections_peak,
		       (f1.user + f1.sys) - (f0.user + f0.sys));
		printf("  driver CPU      %.2f s (%.0f%% of one core)\n",
		       drv1 - drv0, 100.0 * (drv1 - drv0) / wall);
		format_per_cpu(ref0_cpu, ref0_text, sizeof(ref0_text));
		format_per_cpu(ref1_cpu, ref1_text, sizeof(ref1_text));
		printf("  machine ref     %.0f ms before, %.0f ms after (the"
		       " same SQLite load alone on its slowest CPU; per CPU"
		       " %s before, %s after; lower: a faster machine)\n",
		       ref0, ref1, ref0_text, ref1_text);
		if (o.verify && t_done > 0) {
			struct verify v;

			verify_all(base, hdrs, o.n, &v);
			printf("  verified        %ld listed, %ld COMPLETED,"
			       " %ld refine steps got generate's URL"
			       " (%ld did not)\n",
			       v.seen, v.completed, v.mapped, v.bad);
			if (v.last_completed > 0)
				printf("  server span     %.3f s (min created_at"
				       " -> max completed_at, ms"
				       " timestamps)\n",
				       v.last_completed - v.first_created);
		}
		fflush(stdout);
		curl_slist_free_all(hdrs);
		curl_slist_free_all(post_hdrs);
		cleanup();
		curl_global_cleanup();
		return t_done > 0 && failed == 0 ? 0 : 1;
	}
}
