// SPDX-License-Identifier: Apache-2.0
/*
 * flood: a bounded, counted UDP flood for bench/drops_bench.py.
 *
 * Sends UDP datagrams to DST over ports PORT..PORT+NPORTS-1, on which nothing
 * listens, from THREADS threads (thread i pinned to CPU (FIRST_CPU+i) mod
 * ncpus). Meant to run inside the bench's own network namespace: each datagram
 * goes out over loopback, comes back in, finds no socket and is freed with
 * reason NO_SOCKET in __udp4_lib_rcv, in the softirq the sender's own
 * sendmmsg() runs on return. So every datagram the kernel accepted is exactly
 * one drop, and the sender's CPU pays for the tracer's kernel program.
 *
 * Why sendmmsg(): one syscall per BATCH datagrams, so the flood's rate is
 * bounded by the kernel's receive path (and the tracer in it), not by syscall
 * entry. Why an unconnected socket with a destination per message: a connected
 * UDP socket would turn the ICMP port-unreachable replies into ECONNREFUSED on
 * later sends and break the count.
 *
 * Bounded twice: at most COUNT datagrams in total and at most SECONDS seconds
 * (hard cap 120 s). RATE (datagrams/s over all threads, 0: as fast as
 * possible) paces the flood with nanosleep, in slices of about 1 ms.
 *
 * Prints one JSON line:
 *   {"sent":..,"errors":..,"first_errno":..,"elapsed_s":..,"rate":..,"threads":..}
 * "sent" counts datagrams sendmmsg() reported as sent: the exact drop count.
 *
 * Build: gcc -O2 -Wall -pthread -o flood flood.c
 * Usage: flood DST PORT NPORTS THREADS FIRST_CPU COUNT SECONDS RATE [BATCH]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 64
#define MAX_BATCH 256
#define MAX_SECONDS 120.0

struct worker {
	pthread_t thread;
	unsigned index;
	unsigned long long sent, errors;
	int first_errno;
};

static struct in_addr dst;
static unsigned port, nports, threads, first_cpu, batch = 64;
static unsigned long long rate;
static double seconds;
static atomic_llong budget; /* datagrams still allowed over all threads */
static struct timespec start;

static double elapsed(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9;
}

static void pace(unsigned long long done)
{
	/* This thread's share of RATE: datagram `done` is due at done * threads / rate. */
	double due = (double)done * threads / (double)rate;
	double wait = due - elapsed();

	if (wait > 0) {
		struct timespec ts = {.tv_sec = (time_t)wait,
				      .tv_nsec = (long)((wait - (double)(time_t)wait) * 1e9)};
		nanosleep(&ts, NULL);
	}
}

static void *run(void *arg)
{
	struct worker *w = arg;
	static const char payload[16] = "kbpf-bench";
	struct sockaddr_in to[MAX_BATCH];
	struct iovec iov = {.iov_base = (void *)payload, .iov_len = sizeof(payload)};
	struct mmsghdr msgs[MAX_BATCH];
	unsigned long long done = 0;
	unsigned slice = batch, p = w->index % nports;
	long ncpus = sysconf(_SC_NPROCESSORS_ONLN);
	cpu_set_t set;
	int fd;

	CPU_ZERO(&set);
	CPU_SET((first_cpu + w->index) % (ncpus > 0 ? (unsigned)ncpus : 1), &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set); /* best effort */
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0) {
		w->first_errno = errno;
		return NULL;
	}
	if (rate) {
		/* About 1 ms of this thread's share per syscall, at least one datagram. */
		unsigned long long per_ms = rate / threads / 1000;

		slice = per_ms < 1 ? 1 : per_ms < batch ? (unsigned)per_ms : batch;
	}
	memset(msgs, 0, sizeof(msgs));
	for (unsigned i = 0; i < MAX_BATCH; i++) {
		to[i] = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr = dst};
		msgs[i].msg_hdr.msg_name = &to[i];
		msgs[i].msg_hdr.msg_namelen = sizeof(to[i]);
		msgs[i].msg_hdr.msg_iov = &iov;
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	for (;;) {
		/* Claim a slice of the global budget, then check the clock. */
		long long take = slice;
		long long left = atomic_fetch_sub(&budget, take);
		int n;

		if (left <= 0)
			break;
		if (left < take)
			take = left;
		if (elapsed() >= seconds)
			break;
		if (rate)
			pace(done);
		for (long long i = 0; i < take; i++) {
			to[i].sin_port = htons((unsigned short)(port + p));
			if (++p == nports)
				p = 0;
		}
		n = sendmmsg(fd, msgs, (unsigned)take, 0);
		if (n < 0) {
			/* Nothing of this slice went out: count it as errors, not as drops. */
			if (!w->first_errno)
				w->first_errno = errno;
			w->errors += (unsigned long long)take;
		} else {
			w->sent += (unsigned long long)n;
			/* A short send: the rest was not sent (the next call reports why). */
			w->errors += (unsigned long long)(take - n);
		}
		done += (unsigned long long)take;
	}
	close(fd);
	return NULL;
}

int main(int argc, char **argv)
{
	static struct worker workers[MAX_THREADS];
	unsigned long long sent = 0, errors = 0, count;
	int first_errno = 0;
	double took;

	if (argc != 9 && argc != 10) {
		fprintf(stderr, "usage: %s DST PORT NPORTS THREADS FIRST_CPU COUNT SECONDS RATE [BATCH]\n",
			argv[0]);
		return 2;
	}
	if (inet_pton(AF_INET, argv[1], &dst) != 1) {
		fprintf(stderr, "bad address %s\n", argv[1]);
		return 2;
	}
	port = (unsigned)atoi(argv[2]);
	nports = (unsigned)atoi(argv[3]);
	threads = (unsigned)atoi(argv[4]);
	first_cpu = (unsigned)atoi(argv[5]);
	count = strtoull(argv[6], NULL, 10);
	seconds = atof(argv[7]);
	rate = strtoull(argv[8], NULL, 10);
	if (argc == 10)
		batch = (unsigned)atoi(argv[9]);
	if (!port || !nports || port + nports > 65536 || !threads || threads > MAX_THREADS ||
	    seconds <= 0 || !count || !batch || batch > MAX_BATCH) {
		fprintf(stderr, "bad arguments\n");
		return 2;
	}
	if (seconds > MAX_SECONDS)
		seconds = MAX_SECONDS;
	atomic_store(&budget, (long long)count);

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (unsigned i = 0; i < threads; i++) {
		workers[i].index = i;
		if (pthread_create(&workers[i].thread, NULL, run, &workers[i])) {
			perror("pthread_create");
			return 1;
		}
	}
	for (unsigned i = 0; i < threads; i++) {
		pthread_join(workers[i].thread, NULL);
		sent += workers[i].sent;
		errors += workers[i].errors;
		if (!first_errno)
			first_errno = workers[i].first_errno;
	}
	took = elapsed();
	printf("{\"sent\":%llu,\"errors\":%llu,\"first_errno\":%d,\"elapsed_s\":%.6f,\"rate\":%.0f,"
	       "\"threads\":%u}\n",
	       sent, errors, first_errno, took, (double)sent / took, threads);
	return first_errno && !sent ? 1 : 0;
}
