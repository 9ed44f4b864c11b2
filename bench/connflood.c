// SPDX-License-Identifier: Apache-2.0
/*
 * A connection flood for bench/tcp_bench.py: THREADS threads connect() to
 * DST:PORT (nothing listens: each attempt is refused by a RST) for SECONDS,
 * each a new socket closed right after. Prints one JSON line:
 * {"connections": N, "refused": R, "seconds": S}. Run inside a netns the
 * bench creates; it only ever targets that netns's peer. RATE (connections/s
 * across threads, 0 = as fast as possible) paces each thread in batches of 64.
 *
 *   connflood DST PORT THREADS SECONDS [RATE]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in dst;
static double deadline, started, per_thread_rate;
static atomic_ulong connections, refused;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *worker(void *arg)
{
	unsigned long mine = 0, mine_refused = 0;

	(void)arg;
	while ((mine & 63) || now() < deadline) {
		if (per_thread_rate > 0 && !(mine & 63)) {
			double due = started + mine / per_thread_rate, wait = due - now();

			if (wait > 0) {
				struct timespec ts = { (time_t)wait, (long)((wait - (time_t)wait) * 1e9) };

				nanosleep(&ts, NULL);
			}
		}
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		if (fd < 0)
			break;
		if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0 && errno == ECONNREFUSED)
			mine_refused++;
		close(fd);
		mine++;
	}
	atomic_fetch_add(&connections, mine);
	atomic_fetch_add(&refused, mine_refused);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t threads[64];
	int nthreads;

	if (argc != 5 && argc != 6) {
		fprintf(stderr, "usage: %s DST PORT THREADS SECONDS [RATE]\n", argv[0]);
		return 2;
	}
	dst.sin_family = AF_INET;
	dst.sin_port = htons(atoi(argv[2]));
	if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1)
		return 2;
	nthreads = atoi(argv[3]);
	if (nthreads < 1 || nthreads > 64)
		return 2;
	per_thread_rate = argc == 6 ? atof(argv[5]) / nthreads : 0;
	started = now();
	deadline = started + atof(argv[4]);
	for (int i = 0; i < nthreads; i++)
		pthread_create(&threads[i], NULL, worker, NULL);
	for (int i = 0; i < nthreads; i++)
		pthread_join(threads[i], NULL);
	printf("{\"connections\": %lu, \"refused\": %lu, \"seconds\": %.3f}\n",
	       (unsigned long)connections, (unsigned long)refused, now() - started);
	return 0;
}
