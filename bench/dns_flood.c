// SPDX-License-Identifier: Apache-2.0
/*
 * dns_flood: a bounded, counted flood of DNS lookups for bench/dns_bench.py.
 *
 * One process plays both ends on 127.0.0.1 inside the bench's own network
 * namespace: a client socket sends BATCH A queries (each a fresh id and
 * name, q<N>.bench.test) with sendmmsg(), a server socket bound to port 53
 * reads them with recvmmsg() and answers each with one A record, and the
 * client reads the answers. So every lookup is two real DNS packets through
 * the kernel, which a capture in that netns sees and must decode and match.
 *
 * Bounded twice: COUNT lookups at most and SECONDS seconds at most (hard cap
 * 60 s). RATE lookups/s (0: as fast as it goes) paces it in ~1 ms slices.
 *
 * Prints one JSON line: {"sent":..,"answered":..,"elapsed_s":..,"rate":..}
 *
 * Build: gcc -O2 -Wall -o dns_flood dns_flood.c
 * Usage: dns_flood COUNT SECONDS RATE [BATCH]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_BATCH 64
#define MSG_MAX 512
#define HARD_CAP_S 60.0

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A query for q<n>.bench.test A IN with id (n & 0xffff). */
static int build_query(unsigned char *out, unsigned long n)
{
	char label[24];
	int len = snprintf(label, sizeof(label), "q%lu", n), off = 12;

	memset(out, 0, 12);
	out[0] = (n >> 8) & 0xff;
	out[1] = n & 0xff;
	out[2] = 0x01; /* RD */
	out[5] = 1;    /* QDCOUNT */
	out[off++] = len;
	memcpy(out + off, label, len);
	off += len;
	memcpy(out + off, "\x05" "bench" "\x04" "test" "\x00" "\x00\x01" "\x00\x01", 16);
	return off + 16;
}

/* The answer: QR|RD|RA, ANCOUNT 1, the question, one A record by pointer. */
static int build_answer(unsigned char *msg, int len)
{
	static const unsigned char rr[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1};

	if (len < 12 || len + (int)sizeof(rr) > MSG_MAX)
		return -1;
	msg[2] = 0x81;
	msg[3] = 0x80;
	msg[7] = 1;
	memcpy(msg + len, rr, sizeof(rr));
	return len + sizeof(rr);
}

int main(int argc, char **argv)
{
	static unsigned char bufs[2][MAX_BATCH][MSG_MAX];
	struct mmsghdr msgs[MAX_BATCH];
	struct iovec iovs[MAX_BATCH];
	struct sockaddr_in server = {.sin_family = AF_INET, .sin_port = htons(53)};
	struct sockaddr_in peers[MAX_BATCH];
	unsigned long count, sent = 0, answered = 0;
	double seconds, rate, start, deadline;
	int client, srv, batch = 16;

	if (argc < 4) {
		fprintf(stderr, "usage: %s COUNT SECONDS RATE [BATCH]\n", argv[0]);
		return 2;
	}
	count = strtoul(argv[1], NULL, 10);
	seconds = atof(argv[2]);
	rate = atof(argv[3]);
	if (argc > 4)
		batch = atoi(argv[4]);
	if (batch < 1 || batch > MAX_BATCH || seconds <= 0) {
		fprintf(stderr, "bad arguments\n");
		return 2;
	}
	if (seconds > HARD_CAP_S)
		seconds = HARD_CAP_S;
	server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	client = socket(AF_INET, SOCK_DGRAM, 0);
	srv = socket(AF_INET, SOCK_DGRAM, 0);
	if (client < 0 || srv < 0 || bind(srv, (struct sockaddr *)&server, sizeof(server)) ||
	    connect(client, (struct sockaddr *)&server, sizeof(server))) {
		perror("socket setup");
		return 1;
	}
	start = now_s();
	deadline = start + seconds;
	while (sent < count && now_s() < deadline) {
		int n = batch, got, i;

		if (count - sent < (unsigned long)n)
			n = count - sent;
		if (rate > 0) {
			double due = start + (sent + n) / rate;

			while (now_s() < due) {
				struct timespec pause = {0, 200000};

				nanosleep(&pause, NULL);
			}
		}
		for (i = 0; i < n; i++) {
			iovs[i].iov_base = bufs[0][i];
			iovs[i].iov_len = build_query(bufs[0][i], sent + i);
			memset(&msgs[i], 0, sizeof(msgs[i]));
			msgs[i].msg_hdr.msg_iov = &iovs[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
		}
		got = sendmmsg(client, msgs, n, 0);
		if (got <= 0) {
			perror("sendmmsg");
			break;
		}
		sent += got;
		/* the server side: read them, answer each */
		for (i = 0; i < got; i++) {
			iovs[i].iov_base = bufs[1][i];
			iovs[i].iov_len = MSG_MAX;
			memset(&msgs[i], 0, sizeof(msgs[i]));
			msgs[i].msg_hdr.msg_iov = &iovs[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
			msgs[i].msg_hdr.msg_name = &peers[i];
			msgs[i].msg_hdr.msg_namelen = sizeof(peers[i]);
		}
		n = recvmmsg(srv, msgs, got, MSG_WAITFORONE, NULL);
		for (i = 0; i < n; i++) {
			iovs[i].iov_len = build_answer(bufs[1][i], msgs[i].msg_len);
			msgs[i].msg_hdr.msg_namelen = sizeof(peers[i]);
		}
		if (n > 0 && sendmmsg(srv, msgs, n, 0) < 0)
			perror("sendmmsg answers");
		/* the client reads its answers */
		for (i = 0; i < n; i++) {
			iovs[i].iov_base = bufs[0][i];
			iovs[i].iov_len = MSG_MAX;
			memset(&msgs[i], 0, sizeof(msgs[i]));
			msgs[i].msg_hdr.msg_iov = &iovs[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
		}
		if (n > 0) {
			got = recvmmsg(client, msgs, n, MSG_WAITFORONE, NULL);
			if (got > 0)
				answered += got;
		}
	}
	printf("{\"sent\":%lu,\"answered\":%lu,\"elapsed_s\":%.3f,\"rate\":%.0f}\n", sent, answered,
	       now_s() - start, rate);
	return 0;
}
