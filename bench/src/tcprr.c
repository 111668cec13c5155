// SPDX-License-Identifier: Apache-2.0
/*
 * tcprr: TCP request/response (ping-pong) latency, the "RR" of baselines.md.
 *
 *   tcprr server [-b ADDR] [-p PORT]
 *       Echoes fixed-size messages back, one connection at a time, forever (until killed).
 *   tcprr client -H ADDR [-p PORT] [-t SECONDS] [-s BYTES] [-w WARMUP_MS] [-j]
 *       One connection, TCP_NODELAY, `BYTES` (64) out and the same back per transaction, as fast
 *       as possible for SECONDS (5) after WARMUP_MS (200) unrecorded. Prints transactions/s and
 *       RTT p50/p90/p99 in microseconds (-j: one JSON object on stdout).
 *   tcprr probe -H ADDR [-p PORT] [-i INTERVAL_US] [-S STALL_MS] [-t MAX_SECONDS] [-s BYTES]
 *       One transaction every INTERVAL_US (1000) until one gets no answer within STALL_MS (300):
 *       prints (JSON) the wall-clock times of the last answered request and of the unanswered
 *       one, i.e. the window in which the flow started being dropped. Exit 0 on a stall, 3 when
 *       MAX_SECONDS (60) pass without one.
 *   tcprr connprobe -H ADDR [-p PORT] [-i INTERVAL_US] [-S STALL_MS] [-t MAX_SECONDS] [-s BYTES]
 *       The same with a NEW connection per transaction (connect, one request and its answer,
 *       close): what a policy does to new connections, independent of conntrack state.
 *
 * Timing is CLOCK_MONOTONIC around write()+read(); every RTT is kept (4 bytes each) and sorted
 * at the end, so the percentiles are exact. Pin client and server with taskset as the caller
 * wants (same CPU = pure per-transaction stack + datapath cost).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_MSG 65536

static void die(const char *what)
{
	fprintf(stderr, "tcprr: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: tcprr server [-b ADDR] [-p PORT]\n"
		"       tcprr client -H ADDR [-p PORT] [-t SECONDS] [-s BYTES] [-w WARMUP_MS] [-j]\n"
		"       tcprr probe -H ADDR [-p PORT] [-i INTERVAL_US] [-S STALL_MS] [-t MAX_SECONDS] [-s BYTES]\n"
		"       tcprr connprobe -H ADDR [-p PORT] [-i INTERVAL_US] [-S STALL_MS] [-t MAX_SECONDS] [-s BYTES]\n");
	exit(1);
}

static uint64_t now_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void set_nodelay(int fd)
{
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		die("setsockopt(TCP_NODELAY)");
}

/* Reads exactly len bytes; 0 on EOF or reset, 1 when done; dies on other errors. */
static int read_full(int fd, char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);

		if (n == 0)
			return 0;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ECONNRESET)
				return 0;
			die("read");
		}
		got += (size_t)n;
	}
	return 1;
}

static void write_full(int fd, const char *buf, size_t len)
{
	size_t put = 0;

	while (put < len) {
		ssize_t n = write(fd, buf + put, len - put);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("write");
		}
		put += (size_t)n;
	}
}

static struct sockaddr_in parse_addr(const char *host, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };

	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		fprintf(stderr, "tcprr: not an IPv4 address: %s\n", host);
		exit(1);
	}
	return sa;
}

static __attribute__((noreturn)) void run_server(const char *bind_addr, int port, size_t size)
{
	struct sockaddr_in sa = parse_addr(bind_addr, port);
	char *buf = malloc(size);
	int one = 1;
	int lfd;

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0)
		die("socket");
	if (setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		die("setsockopt(SO_REUSEADDR)");
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("bind");
	if (listen(lfd, 16) < 0)
		die("listen");
	fprintf(stderr, "tcprr: listening on %s:%d\n", bind_addr, port);
	for (;;) {
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			die("accept");
		}
		set_nodelay(fd);
		/* Client and server must use the same -s (both default to 64). */
		while (read_full(fd, buf, size))
			write_full(fd, buf, size);
		close(fd);
	}
}

static int connect_to(const char *host, int port)
{
	struct sockaddr_in sa = parse_addr(host, port);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		die("socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("connect");
	set_nodelay(fd);
	return fd;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Exact quantile (nearest rank, linear between ranks) of sorted samples, in microseconds. */
static double quantile_us(const uint32_t *s, size_t n, double q)
{
	double pos = (double)(n - 1) * q;
	size_t lo = (size_t)pos;
	size_t hi = lo + 1 < n ? lo + 1 : lo;

	return (s[lo] + (s[hi] - (double)s[lo]) * (pos - (double)lo)) / 1000.0;
}

static int run_client(const char *host, int port, double seconds, size_t size, int warmup_ms, int json)
{
	size_t cap = 1 << 20, n = 0;
	uint32_t *rtt = malloc(cap * sizeof(*rtt));
	char *buf = calloc(1, size);
	uint64_t start, end, deadline, t0, t1;
	double sum = 0;
	int fd;

	if (!rtt || !buf)
		die("malloc");
	fd = connect_to(host, port);
	deadline = now_ns(CLOCK_MONOTONIC) + (uint64_t)warmup_ms * 1000000ull;
	while (now_ns(CLOCK_MONOTONIC) < deadline) {
		write_full(fd, buf, size);
		if (!read_full(fd, buf, size)) {
			errno = ECONNRESET;
			die("server closed the connection");
		}
	}
	start = now_ns(CLOCK_MONOTONIC);
	deadline = start + (uint64_t)(seconds * 1e9);
	t0 = start;
	for (;;) {
		write_full(fd, buf, size);
		if (!read_full(fd, buf, size)) {
			errno = ECONNRESET;
			die("server closed the connection");
		}
		t1 = now_ns(CLOCK_MONOTONIC);
		if (n == cap) {
			cap *= 2;
			rtt = realloc(rtt, cap * sizeof(*rtt));
			if (!rtt)
				die("realloc");
		}
		rtt[n++] = (uint32_t)(t1 - t0 > UINT32_MAX ? UINT32_MAX : t1 - t0);
		sum += (double)(t1 - t0);
		t0 = t1;
		if (t1 >= deadline)
			break;
	}
	end = t1;
	close(fd);
	qsort(rtt, n, sizeof(*rtt), cmp_u32);
	{
		double secs = (double)(end - start) / 1e9;
		double tps = (double)n / secs;
		double p50 = quantile_us(rtt, n, 0.5), p90 = quantile_us(rtt, n, 0.9), p99 = quantile_us(rtt, n, 0.99);

		if (json)
			printf("{\"transactions\":%zu,\"seconds\":%.6f,\"tps\":%.1f,\"p50_us\":%.3f,\"p90_us\":%.3f,"
			       "\"p99_us\":%.3f,\"min_us\":%.3f,\"max_us\":%.3f,\"mean_us\":%.3f,\"bytes\":%zu}\n",
			       n, secs, tps, p50, p90, p99, rtt[0] / 1000.0, rtt[n - 1] / 1000.0, sum / (double)n / 1000.0, size);
		else
			printf("%zu transactions in %.3f s: %.0f trans/s, RTT p50 %.2f us, p90 %.2f us, p99 %.2f us (min %.2f, max %.2f)\n",
			       n, secs, tps, p50, p90, p99, rtt[0] / 1000.0, rtt[n - 1] / 1000.0);
	}
	return 0;
}

static int run_probe(const char *host, int port, int interval_us, int stall_ms, double max_seconds, size_t size)
{
	char *buf = calloc(1, size);
	uint64_t give_up = now_ns(CLOCK_MONOTONIC) + (uint64_t)(max_seconds * 1e9);
	uint64_t last_ok_sent = 0, last_ok_answered = 0, answered = 0;
	struct pollfd pfd;
	int fd;

	if (!buf)
		die("malloc");
	fd = connect_to(host, port);
	pfd.fd = fd;
	pfd.events = POLLIN;
	/* Ready: the caller starts the change it measures after this line. */
	printf("{\"ready\":true}\n");
	fflush(stdout);
	while (now_ns(CLOCK_MONOTONIC) < give_up) {
		uint64_t sent = now_ns(CLOCK_REALTIME);
		int r;

		write_full(fd, buf, size);
		r = poll(&pfd, 1, stall_ms);
		if (r < 0 && errno != EINTR)
			die("poll");
		if (r <= 0) {
			printf("{\"stalled\":true,\"answered\":%llu,\"lastAnsweredSentUs\":%.1f,\"lastAnsweredAtUs\":%.1f,"
			       "\"unansweredSentUs\":%.1f}\n",
			       (unsigned long long)answered, last_ok_sent / 1e3, last_ok_answered / 1e3, sent / 1e3);
			return 0;
		}
		if (!read_full(fd, buf, size)) {
			errno = ECONNRESET;
			die("server closed the connection");
		}
		answered++;
		last_ok_sent = sent;
		last_ok_answered = now_ns(CLOCK_REALTIME);
		if (interval_us > 0)
			usleep((useconds_t)interval_us);
	}
	printf("{\"stalled\":false,\"answered\":%llu}\n", (unsigned long long)answered);
	return 3;
}

/* One connect + request + answer within stall_ms; 1 when answered, 0 on a stall. */
static int connect_transact(const struct sockaddr_in *sa, char *buf, size_t size, int stall_ms)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	uint64_t deadline = now_ns(CLOCK_MONOTONIC) + (uint64_t)stall_ms * 1000000ull;
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	size_t got = 0;
	int err = 0, ok = 0;
	socklen_t len = sizeof(err);

	if (fd < 0)
		die("socket");
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 && errno != EINPROGRESS)
		die("connect");
	if (poll(&pfd, 1, stall_ms) <= 0)
		goto out;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0)
		goto out; /* refused or unreachable: not answered */
	set_nodelay(fd);
	if (write(fd, buf, size) != (ssize_t)size)
		goto out;
	pfd.events = POLLIN;
	while (got < size) {
		int64_t left_ms = ((int64_t)deadline - (int64_t)now_ns(CLOCK_MONOTONIC)) / 1000000;
		ssize_t n;

		if (left_ms <= 0 || poll(&pfd, 1, (int)left_ms) <= 0)
			goto out;
		n = read(fd, buf + got, size - got);
		if (n <= 0 && !(n < 0 && errno == EAGAIN))
			goto out;
		if (n > 0)
			got += (size_t)n;
	}
	ok = 1;
out:
	close(fd);
	return ok;
}

static int run_connprobe(const char *host, int port, int interval_us, int stall_ms, double max_seconds, size_t size)
{
	struct sockaddr_in sa = parse_addr(host, port);
	char *buf = calloc(1, size);
	uint64_t give_up = now_ns(CLOCK_MONOTONIC) + (uint64_t)(max_seconds * 1e9);
	uint64_t last_ok_sent = 0, last_ok_answered = 0, answered = 0;

	if (!buf)
		die("malloc");
	if (!connect_transact(&sa, buf, size, stall_ms))
		die("first transaction got no answer");
	printf("{\"ready\":true}\n");
	fflush(stdout);
	while (now_ns(CLOCK_MONOTONIC) < give_up) {
		uint64_t sent = now_ns(CLOCK_REALTIME);

		if (!connect_transact(&sa, buf, size, stall_ms)) {
			printf("{\"stalled\":true,\"answered\":%llu,\"lastAnsweredSentUs\":%.1f,\"lastAnsweredAtUs\":%.1f,"
			       "\"unansweredSentUs\":%.1f}\n",
			       (unsigned long long)answered, last_ok_sent / 1e3, last_ok_answered / 1e3, sent / 1e3);
			return 0;
		}
		answered++;
		last_ok_sent = sent;
		last_ok_answered = now_ns(CLOCK_REALTIME);
		if (interval_us > 0)
			usleep((useconds_t)interval_us);
	}
	printf("{\"stalled\":false,\"answered\":%llu}\n", (unsigned long long)answered);
	return 3;
}

int main(int argc, char **argv)
{
	const char *host = NULL, *bind_addr = "0.0.0.0";
	double seconds = -1;
	size_t size = 64;
	int port = 7000, warmup_ms = 200, json = 0, interval_us = 1000, stall_ms = 300;
	const char *mode;
	int opt;

	if (argc < 2)
		usage();
	mode = argv[1];
	optind = 2;
	while ((opt = getopt(argc, argv, "H:b:p:t:s:w:i:S:j")) != -1) {
		switch (opt) {
		case 'H': host = optarg; break;
		case 'b': bind_addr = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 't': seconds = atof(optarg); break;
		case 's': size = (size_t)atol(optarg); break;
		case 'w': warmup_ms = atoi(optarg); break;
		case 'i': interval_us = atoi(optarg); break;
		case 'S': stall_ms = atoi(optarg); break;
		case 'j': json = 1; break;
		default: usage();
		}
	}
	if (size == 0 || size > MAX_MSG || port <= 0 || port > 65535)
		usage();
	signal(SIGPIPE, SIG_IGN);
	if (strcmp(mode, "server") == 0)
		run_server(bind_addr, port, size);
	if (!host)
		usage();
	if (strcmp(mode, "client") == 0)
		return run_client(host, port, seconds > 0 ? seconds : 5, size, warmup_ms, json);
	if (strcmp(mode, "probe") == 0)
		return run_probe(host, port, interval_us, stall_ms, seconds > 0 ? seconds : 60, size);
	if (strcmp(mode, "connprobe") == 0)
		return run_connprobe(host, port, interval_us, stall_ms, seconds > 0 ? seconds : 60, size);
	usage();
	return 1;
}
