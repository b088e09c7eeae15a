/* A small Modbus/TCP server on libmodbus, the simulated PLC for scripts/bench-modbus.ts.
 * Serves every connection from one select() loop (as libmodbus's own examples do); it answers in
 * tens of microseconds, so it is never the bottleneck the benchmark measures.
 * usage: modbus-server PORT      (binds 127.0.0.1; prints "ready PORT" once listening)
 * build: cc -O2 -o modbus-server modbus-server.c -I/usr/include/modbus -lmodbus
 */
#include <errno.h>
#include <modbus.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s PORT\n", argv[0]); return 2; }
    modbus_t *ctx = modbus_new_tcp("127.0.0.1", atoi(argv[1]));
    modbus_mapping_t *map = modbus_mapping_new(2000, 2000, 2000, 2000);
    if (!ctx || !map) { fprintf(stderr, "init: %s\n", modbus_strerror(errno)); return 1; }
    for (int i = 0; i < 2000; i++) { map->tab_registers[i] = 100 + i; map->tab_input_registers[i] = 1000 + i; }
    int server = modbus_tcp_listen(ctx, 64);
    if (server < 0) { fprintf(stderr, "listen: %s\n", modbus_strerror(errno)); return 1; }
    printf("ready %s\n", argv[1]);
    fflush(stdout);
    fd_set all;
    FD_ZERO(&all);
    FD_SET(server, &all);
    int maxfd = server;
    uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
    for (;;) {
        fd_set ready = all;
        if (select(maxfd + 1, &ready, NULL, NULL, NULL) < 0) { if (errno == EINTR) continue; return 1; }
        for (int fd = 0; fd <= maxfd; fd++) {
            if (!FD_ISSET(fd, &ready)) continue;
            if (fd == server) {
                int c = modbus_tcp_accept(ctx, &server);
                if (c >= 0) { FD_SET(c, &all); if (c > maxfd) maxfd = c; }
                continue;
            }
            modbus_set_socket(ctx, fd);
            int n = modbus_receive(ctx, query);
            if (n > 0) modbus_reply(ctx, query, n, map);
            else if (n < 0) { close(fd); FD_CLR(fd, &all); }
        }
    }
}
