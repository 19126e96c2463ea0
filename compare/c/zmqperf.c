/* libzmq's side of zocket's comparison benchmark (compare/): the roles of libzmq's own perf
 * tools (local_thr/remote_thr, local_lat/remote_lat) in one program, with percentiles and
 * optional CURVE. Built against the system libzmq at run time by zocket-compare.
 *
 *   zmqperf thr  ENDPOINT SIZE COUNT [SERVER_SECRET_Z85]  bind PULL, receive COUNT, print rate
 *   zmqperf send ENDPOINT SIZE COUNT [SERVER_PUBLIC_Z85]  connect PUSH, send COUNT, linger
 *   zmqperf lat  ENDPOINT SIZE COUNT [SERVER_SECRET_Z85]  bind REP, echo COUNT requests
 *   zmqperf ping ENDPOINT SIZE COUNT [SERVER_PUBLIC_Z85]  connect REQ, time COUNT round trips
 *
 * Like local_thr, `thr` starts its clock at the first message. Every socket keeps libzmq's
 * default high-water marks; every message is one zmq_send/zmq_recv call. Output is one line:
 *   thr msgs_per_s=N peak_rss_kib=N     ping p50_us=N p99_us=N
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <zmq.h>

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void die(const char *what) {
    fprintf(stderr, "zmqperf: %s: %s\n", what, zmq_strerror(zmq_errno()));
    exit(1);
}

/* The peak resident set in KiB: VmHWM from /proc/self/status (Linux), else getrusage. Not
 * getrusage first: on Linux its ru_maxrss also counts the parent that forked us (its address
 * space before our exec), which can be larger than ours. */
static long peak_rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    if (f) {
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "VmHWM: %ld", &kib) == 1) break;
        fclose(f);
    }
    if (kib < 0) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        kib = ru.ru_maxrss;
    }
    return kib;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* A server gets its secret key; a client the server's public key and a fresh key pair. */
static void curve(void *s, int server, const char *key) {
    if (!key) return;
    if (server) {
        int one = 1;
        if (zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof one)) die("ZMQ_CURVE_SERVER");
        if (zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, key, 40)) die("ZMQ_CURVE_SECRETKEY");
    } else {
        char pub[41], sec[41];
        if (zmq_curve_keypair(pub, sec)) die("zmq_curve_keypair (libzmq without CURVE?)");
        if (zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, key, 40)) die("ZMQ_CURVE_SERVERKEY");
        if (zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 40)) die("ZMQ_CURVE_PUBLICKEY");
        if (zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 40)) die("ZMQ_CURVE_SECRETKEY");
    }
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: zmqperf thr|send|lat|ping ENDPOINT SIZE COUNT [KEY_Z85]\n");
        return 2;
    }
    const char *role = argv[1], *ep = argv[2];
    size_t size = strtoul(argv[3], NULL, 10);
    long count = strtol(argv[4], NULL, 10);
    const char *key = argc > 5 ? argv[5] : NULL;
    char *buf = calloc(size ? size : 1, 1);
    void *ctx = zmq_ctx_new();
    if (!ctx || !buf || count < 1) die("setup");

    if (!strcmp(role, "thr")) {
        void *s = zmq_socket(ctx, ZMQ_PULL);
        curve(s, 1, key);
        if (zmq_bind(s, ep)) die("bind");
        double start = 0;
        for (long i = 0; i < count; i++) {
            int n = zmq_recv(s, buf, size, 0);
            if (n < 0) die("recv");
            if ((size_t)n != size) { fprintf(stderr, "zmqperf: got %d bytes, expected %zu\n", n, size); return 1; }
            if (i == 0) start = now_us();
        }
        double secs = (now_us() - start) / 1e6;
        printf("thr msgs_per_s=%.0f peak_rss_kib=%ld\n", count / (secs > 0 ? secs : 1e-9), peak_rss_kib());
        zmq_close(s);
    } else if (!strcmp(role, "send")) {
        void *s = zmq_socket(ctx, ZMQ_PUSH);
        curve(s, 0, key);
        if (zmq_connect(s, ep)) die("connect");
        for (long i = 0; i < count; i++)
            if (zmq_send(s, buf, size, 0) < 0) die("send");
        zmq_close(s); /* the default linger delivers what is queued before zmq_ctx_term returns */
    } else if (!strcmp(role, "lat")) {
        void *s = zmq_socket(ctx, ZMQ_REP);
        curve(s, 1, key);
        if (zmq_bind(s, ep)) die("bind");
        for (long i = 0; i < count; i++) {
            int n = zmq_recv(s, buf, size, 0);
            if (n < 0) die("recv");
            if (zmq_send(s, buf, size, 0) < 0) die("send");
        }
        zmq_close(s);
    } else if (!strcmp(role, "ping")) {
        void *s = zmq_socket(ctx, ZMQ_REQ);
        curve(s, 0, key);
        if (zmq_connect(s, ep)) die("connect");
        double *samples = malloc(sizeof(double) * count);
        if (!samples) die("malloc");
        for (long i = 0; i < count; i++) {
            double t = now_us();
            if (zmq_send(s, buf, size, 0) < 0) die("send");
            if (zmq_recv(s, buf, size, 0) < 0) die("recv");
            samples[i] = now_us() - t;
        }
        qsort(samples, count, sizeof(double), cmp_double);
        printf("ping p50_us=%.1f p99_us=%.1f\n", samples[(long)((count - 1) * 0.50 + 0.5)],
               samples[(long)((count - 1) * 0.99 + 0.5)]);
        zmq_close(s);
    } else {
        fprintf(stderr, "zmqperf: unknown role %s\n", role);
        return 2;
    }
    zmq_ctx_term(ctx);
    return 0;
}
