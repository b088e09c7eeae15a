/* Load generator for scripts/bench-modbus.ts: N client threads, each with its own Modbus/TCP
 * connection (libmodbus), doing round trips back to back for a fixed time. Written in C so that the
 * client is never what limits the figures (a Node client tops out below the simulated PLC's rate).
 * usage: modbus-load HOST PORT UNIT CLIENTS SECONDS read|write
 * prints one JSON line: {"ok":N,"errors":N,"seconds":S,"p50_us":X,"p99_us":Y}
 * build: cc -O2 -pthread -o modbus-load modbus-load.c -I/usr/include/modbus -lmodbus
 */
#include <errno.h>
#include <modbus.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SAMPLES 4000000

static const char *host;
static int port, unit, seconds, do_write;
static double *samples;
static long nsamples, nerrors;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void *client(void *arg) {
    long id = (long)arg;
    modbus_t *ctx = modbus_new_tcp(host, port);
    modbus_set_slave(ctx, unit);
    modbus_set_response_timeout(ctx, 2, 0);
    if (modbus_connect(ctx) < 0) { fprintf(stderr, "connect: %s\n", modbus_strerror(errno)); return NULL; }
    double *local = malloc(sizeof(double) * 1000000);
    long n = 0, errs = 0;
    uint16_t regs[4];
    double end = now_us() + seconds * 1e6;
    for (long i = 0; now_us() < end; i++) {
        double t0 = now_us();
        int rc = do_write ? modbus_write_register(ctx, 10 + (int)(id % 8), (uint16_t)(i % 100)) : modbus_read_registers(ctx, 0, 4, regs);
        double t1 = now_us();
        if (rc < 0) { errs++; if (errno == EBADF || errno == ECONNRESET || errno == EPIPE) break; continue; }
        if (n < 1000000) local[n++] = t1 - t0;
    }
    pthread_mutex_lock(&lock);
    for (long i = 0; i < n && nsamples < MAX_SAMPLES; i++) samples[nsamples++] = local[i];
    nerrors += errs;
    pthread_mutex_unlock(&lock);
    free(local);
    modbus_close(ctx);
    modbus_free(ctx);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 7) { fprintf(stderr, "usage: %s HOST PORT UNIT CLIENTS SECONDS read|write\n", argv[0]); return 2; }
    host = argv[1]; port = atoi(argv[2]); unit = atoi(argv[3]);
    int clients = atoi(argv[4]); seconds = atoi(argv[5]); do_write = strcmp(argv[6], "write") == 0;
    samples = malloc(sizeof(double) * MAX_SAMPLES);
    pthread_t threads[256];
    double t0 = now_us();
    for (long i = 0; i < clients && i < 256; i++) pthread_create(&threads[i], NULL, client, (void *)i);
    for (int i = 0; i < clients && i < 256; i++) pthread_join(threads[i], NULL);
    double elapsed = (now_us() - t0) / 1e6;
    qsort(samples, nsamples, sizeof(double), cmp);
    double p50 = nsamples ? samples[nsamples / 2] : 0, p99 = nsamples ? samples[(long)(nsamples * 0.99)] : 0;
    printf("{\"ok\":%ld,\"errors\":%ld,\"seconds\":%.3f,\"p50_us\":%.1f,\"p99_us\":%.1f}\n", nsamples, nerrors, elapsed, p50, p99);
    return 0;
}
