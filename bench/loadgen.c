/*
 * WebSocket load generator for the fastws benchmark harness.
 *
 * Why C: a load generator written in Python (even on uvloop) saturates near
 * 160k msgs/s on one core, below what the fastest servers under test reach,
 * so it would end up measuring itself. This one spends a few hundred
 * nanoseconds per message: frames are pre-built and pre-masked once, replies
 * are parsed header-only and their payloads skipped without copying.
 *
 * Modes (single-threaded, epoll, non-blocking sockets):
 *   echo       N connections, W messages in flight on each; every echo sends
 *              the next message. Warm-up, then D seconds measured. Reports
 *              msgs/s, round-trip latency percentiles, client and server CPU.
 *   broadcast  C receiving connections, then one control connection that
 *              sends the text "broadcast N SIZE"; the server then sends N
 *              messages of SIZE bytes to every other connection. Counts
 *              deliveries until N*C arrived or the timeout.
 *   idle       K connections complete the handshake, "ready K" is printed,
 *              then they are held until a line (or EOF) arrives on stdin.
 *   hub        broadcast through the fastws hub's protocol, in any of its
 *              encodings: C receivers send the frames of --hello (connect
 *              and subscribe, built and masked by the caller) and wait for
 *              --hello-replies replies each; then one control connection
 *              sends the frames of --publish (connect and N publish
 *              commands). Every later message a receiver gets is a delivery;
 *              counted until N*C arrived or the timeout, as in broadcast.
 *              --subprotocol names the encoding in the upgrade request.
 *
 * Output: one JSON object on stdout. Errors go to stderr, exit status 2.
 * Build: gcc -O2 -DWITH_TLS bench/loadgen.c -o loadgen -lssl -lcrypto
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#ifdef WITH_TLS
#include <openssl/err.h>
#include <openssl/ssl.h>
#endif

enum mode { MODE_ECHO, MODE_BROADCAST, MODE_IDLE, MODE_HUB };
enum state { ST_FREE, ST_CONNECTING, ST_TLS, ST_HANDSHAKE, ST_OPEN, ST_CLOSED };
enum phase { PH_SETUP, PH_WARMUP, PH_MEASURE, PH_SETTLE, PH_CONTROL, PH_WAIT, PH_DONE };

#define IO_ERR (-1)
#define IO_AGAIN (-2)
#define READ_BUF (256 * 1024)
#define PEND_CAP 512
#define HS_CAP 4096

struct conn {
    int fd;
    int state;
    int want_out;         /* EPOLLOUT currently armed */
    int is_control;
#ifdef WITH_TLS
    SSL *ssl;
#endif
    /* one-off output (handshake request, trigger, close) sent before the stream */
    char pend[PEND_CAP];
    int pend_len, pend_off;
    /* frames sent once after the one-off bytes (hub mode: --hello, --publish) */
    const uint8_t *blob;
    uint64_t blob_len, blob_off;
    int replies;          /* messages received so far (hub mode) */
    /* repeated frame stream: out_left bytes still to send, out_pos bytes sent so far */
    uint64_t out_left, out_pos;
    /* handshake response */
    char *hs;
    int hs_len;
    /* frame parser */
    uint8_t hdr[14];
    int hdr_have, hdr_need, in_payload, peer_closed;
    uint64_t payload_left, frame_len, msg_len;
    /* send timestamps of the messages in flight (ring of `window` entries) */
    uint64_t *ts;
    int ts_head, ts_count;
};

/* ---- options ---- */
static const char *opt_host = "127.0.0.1";
static int opt_port = 0;
static int opt_mode = MODE_ECHO;
static int opt_conns = 1;
static int opt_window = 1;
static uint64_t opt_size = 64;
static double opt_warmup = 1.0;
static double opt_duration = 5.0;
static int opt_messages = 1000;
static double opt_timeout = 60.0;
static double opt_setup_timeout = 120.0;
static int opt_server_pid = 0;
static int opt_raw = 0;
static int opt_tls = 0;
static int opt_concurrency = 200;
static const char *opt_path = "/";
static const char *opt_subprotocol = NULL;
static uint8_t *hello, *publish;
static uint64_t hello_len, publish_len;
static int opt_hello_replies = 0;
static int ready;             /* hub mode: receivers that got their hello replies */

/* ---- state ---- */
static struct conn *conns;
static int nconns_total;
static int epfd;
static int started, opened;
static int phase = PH_SETUP;
static uint8_t *stream;         /* the pre-masked frame repeated to at least W frames */
static uint64_t stream_len, frame_size;
static uint64_t messages, bad_sizes, errors;
static uint64_t deliveries, first_delivery_ns, last_delivery_ns;
static int sending;
static uint64_t now_ns;
#ifdef WITH_TLS
static SSL_CTX *tls_ctx;
#endif

/* ---- latency histogram: log-linear, 64 sub-buckets per power of two (~1.5%) ---- */
#define SUB_BITS 6
#define SUB (1 << SUB_BITS)
#define HIST_N (SUB + 58 * SUB)
static uint64_t hist[HIST_N];
static uint64_t hist_total;

static int hist_index(uint64_t v) {
    if (v < SUB) return (int)v;
    int e = 63 - __builtin_clzll(v);
    uint64_t m = v >> (e - SUB_BITS);
    int idx = SUB + (e - SUB_BITS) * SUB + (int)(m - SUB);
    return idx < HIST_N ? idx : HIST_N - 1;
}

static double hist_value(int idx) {
    if (idx < SUB) return idx;
    int k = (idx - SUB) / SUB;
    uint64_t m = SUB + (uint64_t)((idx - SUB) % SUB);
    double lo = (double)(m << k), hi = (double)((m + 1) << k);
    return (lo + hi) / 2;
}

static double hist_percentile_us(double q) {
    if (hist_total == 0) return 0;
    uint64_t target = (uint64_t)(q * (double)hist_total);
    if (target < 1) target = 1;
    uint64_t seen = 0;
    for (int i = 0; i < HIST_N; i++) {
        seen += hist[i];
        if (seen >= target) return hist_value(i) / 1000.0;
    }
    return hist_value(HIST_N - 1) / 1000.0;
}

/* ---- helpers ---- */
static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void fail(const char *what) {
    fprintf(stderr, "loadgen: %s (errno %d: %s)\n", what, errno, strerror(errno));
    exit(2);
}

static double cpu_self_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* Server utime+stime: the process CPU clock (ns resolution, same total as
 * /proc/PID/stat fields 14+15), falling back to /proc/PID/stat in ticks. */
static double cpu_server_s(void) {
    if (opt_server_pid <= 0) return -1;
    clockid_t cid;
    struct timespec ts;
    if (clock_getcpuclockid(opt_server_pid, &cid) == 0 && clock_gettime(cid, &ts) == 0)
        return ts.tv_sec + ts.tv_nsec / 1e9;
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", opt_server_pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    unsigned long utime = 0, stime = 0;
    /* after ") " come fields 3..: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
        return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static void set_out(struct conn *c, int want) {
    if (c->want_out == want) return;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0)};
    ev.data.u64 = (uint64_t)(c - conns);
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) fail("epoll_ctl MOD");
    c->want_out = want;
}

/* A masked frame with a fixed key (a load generator needs no unpredictable key). */
static size_t build_frame(uint8_t *out, int opcode, const uint8_t *payload, uint64_t len) {
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t h = 0;
    out[h++] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        out[h++] = (uint8_t)(0x80 | len);
    } else if (len < 65536) {
        out[h++] = 0x80 | 126;
        out[h++] = (uint8_t)(len >> 8);
        out[h++] = (uint8_t)len;
    } else {
        out[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--) out[h++] = (uint8_t)(len >> (8 * i));
    }
    memcpy(out + h, key, 4);
    h += 4;
    for (uint64_t i = 0; i < len; i++) out[h + i] = payload[i] ^ key[i & 3];
    return h + len;
}

static void build_stream(void) {
    uint8_t *payload = malloc(opt_size ? opt_size : 1);
    if (!payload) fail("malloc payload");
    for (uint64_t i = 0; i < opt_size; i++) payload[i] = (uint8_t)('a' + i % 26);
    uint8_t *one = malloc(opt_size + 14);
    if (!one) fail("malloc frame");
    frame_size = build_frame(one, 2, payload, opt_size);
    uint64_t copies = (64 * 1024 + frame_size - 1) / frame_size;
    if (copies < (uint64_t)opt_window) copies = (uint64_t)opt_window;
    stream_len = copies * frame_size;
    stream = malloc(stream_len);
    if (!stream) fail("malloc stream");
    for (uint64_t i = 0; i < copies; i++) memcpy(stream + i * frame_size, one, frame_size);
    free(one);
    free(payload);
}

/* ---- I/O (plain or TLS) ---- */
static long io_read(struct conn *c, void *buf, size_t n) {
#ifdef WITH_TLS
    if (c->ssl) {
        int r = SSL_read(c->ssl, buf, (int)n);
        if (r > 0) return r;
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return IO_AGAIN;
        if (e == SSL_ERROR_ZERO_RETURN) return 0;
        return IO_ERR;
    }
#endif
    ssize_t r = read(c->fd, buf, n);
    if (r >= 0) return r;
    return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? IO_AGAIN : IO_ERR;
}

static long io_write(struct conn *c, const void *buf, size_t n) {
#ifdef WITH_TLS
    if (c->ssl) {
        int r = SSL_write(c->ssl, buf, (int)(n > (1 << 30) ? (1 << 30) : n));
        if (r > 0) return r;
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return IO_AGAIN;
        return IO_ERR;
    }
#endif
    ssize_t r = write(c->fd, buf, n);
    if (r >= 0) return r;
    return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? IO_AGAIN : IO_ERR;
}

static void conn_close(struct conn *c, int is_error) {
    if (c->state == ST_CLOSED || c->state == ST_FREE) return;
    if (is_error) {
        errors++;
        if (phase == PH_SETUP || c->state != ST_OPEN) {
            fprintf(stderr, "loadgen: connection %d failed during setup\n", (int)(c - conns));
            exit(2);
        }
    }
#ifdef WITH_TLS
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
#endif
    close(c->fd);
    c->state = ST_CLOSED;
}

/* Send pending one-off bytes, then as much of the frame stream as the socket takes. */
static void flush(struct conn *c) {
    while (c->pend_off < c->pend_len) {
        long n = io_write(c, c->pend + c->pend_off, (size_t)(c->pend_len - c->pend_off));
        if (n == IO_AGAIN) { set_out(c, 1); return; }
        if (n < 0) { conn_close(c, 1); return; }
        c->pend_off += (int)n;
    }
    c->pend_off = c->pend_len = 0;
    while (c->blob_off < c->blob_len) {
        long n = io_write(c, c->blob + c->blob_off, (size_t)(c->blob_len - c->blob_off));
        if (n == IO_AGAIN) { set_out(c, 1); return; }
        if (n < 0) { conn_close(c, 1); return; }
        c->blob_off += (uint64_t)n;
    }
    while (c->out_left) {
        uint64_t off = c->out_pos % stream_len;
        uint64_t len = stream_len - off;
        if (len > c->out_left) len = c->out_left;
        long n = io_write(c, stream + off, (size_t)len);
        if (n == IO_AGAIN) { set_out(c, 1); return; }
        if (n < 0) { conn_close(c, 1); return; }
        c->out_pos += (uint64_t)n;
        c->out_left -= (uint64_t)n;
    }
    set_out(c, 0);
}

static void queue_pend(struct conn *c, const void *data, size_t n) {
    if ((size_t)c->pend_len + n > PEND_CAP) {
        fprintf(stderr, "loadgen: pending buffer overflow\n");
        exit(2);
    }
    memcpy(c->pend + c->pend_len, data, n);
    c->pend_len += (int)n;
}

static void queue_message(struct conn *c) {
    c->out_left += frame_size;
    int slot = (c->ts_head + c->ts_count) % opt_window;
    c->ts[slot] = now_ns;
    if (c->ts_count < opt_window) c->ts_count++;
}

/* ---- received messages ---- */
static void on_message(struct conn *c, uint64_t len) {
    if (opt_mode == MODE_ECHO) {
        uint64_t sent_at = 0;
        if (c->ts_count) {
            sent_at = c->ts[c->ts_head];
            c->ts_head = (c->ts_head + 1) % opt_window;
            c->ts_count--;
        }
        if (len != opt_size) bad_sizes++;
        if (phase == PH_MEASURE) {
            messages++;
            uint64_t now = mono_ns();
            now_ns = now;
            if (sent_at && now > sent_at) {
                hist[hist_index(now - sent_at)]++;
                hist_total++;
            }
        }
        if (sending) queue_message(c);
    } else if ((opt_mode == MODE_BROADCAST || opt_mode == MODE_HUB) && !c->is_control) {
        if (opt_mode == MODE_HUB) {
            if (++c->replies <= opt_hello_replies) {
                if (c->replies == opt_hello_replies) ready++;
                return;
            }
        } else if (len != opt_size) {
            bad_sizes++;
        }
        uint64_t now = mono_ns();
        if (!deliveries) first_delivery_ns = now;
        last_delivery_ns = now;
        deliveries++;
    }
}

static void on_frame(struct conn *c) {
    int opcode = c->hdr[0] & 0x0f, fin = c->hdr[0] & 0x80;
    if (opcode == 8) {          /* close: the server is going away */
        c->peer_closed = 1;
        return;
    }
    if (opcode & 0x08) return;  /* ping/pong: not expected, ignored */
    c->msg_len += c->frame_len;
    if (fin) {
        on_message(c, c->msg_len);
        c->msg_len = 0;
    }
}

/* Parse server frames (unmasked; masked accepted for the raw TCP echo),
 * any number per read and split anywhere across reads. */
static void on_bytes(struct conn *c, const uint8_t *p, size_t n) {
    const uint8_t *end = p + n;
    while (p < end && !c->peer_closed) {
        if (c->in_payload) {
            uint64_t avail = (uint64_t)(end - p);
            uint64_t take = c->payload_left < avail ? c->payload_left : avail;
            p += take;
            c->payload_left -= take;
            if (!c->payload_left) {
                c->in_payload = 0;
                on_frame(c);
            }
            continue;
        }
        c->hdr[c->hdr_have++] = *p++;
        if (c->hdr_have == 2) {
            int len7 = c->hdr[1] & 0x7f;
            c->hdr_need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((c->hdr[1] & 0x80) ? 4 : 0);
        }
        if (c->hdr_have >= 2 && c->hdr_have == c->hdr_need) {
            int len7 = c->hdr[1] & 0x7f;
            uint64_t len = (uint64_t)len7;
            if (len7 == 126) {
                len = ((uint64_t)c->hdr[2] << 8) | c->hdr[3];
            } else if (len7 == 127) {
                len = 0;
                for (int i = 0; i < 8; i++) len = (len << 8) | c->hdr[2 + i];
            }
            c->frame_len = len;
            c->hdr_have = 0;
            c->hdr_need = 2;
            if (len) {
                c->payload_left = len;
                c->in_payload = 1;
            } else {
                on_frame(c);
            }
        }
    }
    if (c->peer_closed) conn_close(c, phase != PH_DONE);  /* unexpected during a run */
}

static void send_blob(struct conn *c, const uint8_t *data, uint64_t len) {
    c->blob = data;
    c->blob_len = len;
    c->blob_off = 0;
    flush(c);
}

static void became_open(struct conn *c) {
    c->state = ST_OPEN;
    opened++;
    if (opt_mode == MODE_HUB && !c->is_control) send_blob(c, hello, hello_len);
}

static void send_upgrade(struct conn *c) {
    char req[PEND_CAP], protocol[128] = "";
    if (opt_subprotocol)
        snprintf(protocol, sizeof protocol, "Sec-WebSocket-Protocol: %s\r\n", opt_subprotocol);
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: ZmFzdHdzLWxvYWRnZW4taw==\r\n"
                     "%sSec-WebSocket-Version: 13\r\n\r\n",
                     opt_path, opt_host, opt_port, protocol);
    c->state = ST_HANDSHAKE;
    c->hs = malloc(HS_CAP);
    if (!c->hs) fail("malloc handshake");
    c->hs_len = 0;
    queue_pend(c, req, (size_t)n);
    flush(c);
}

static void after_transport_ready(struct conn *c) {
    if (opt_raw) became_open(c);
    else send_upgrade(c);
}

static void on_handshake_bytes(struct conn *c, const uint8_t *p, size_t n) {
    if (c->hs_len + (int)n > HS_CAP) {
        fprintf(stderr, "loadgen: handshake response too large\n");
        exit(2);
    }
    memcpy(c->hs + c->hs_len, p, n);
    c->hs_len += (int)n;
    char *end = memmem(c->hs, (size_t)c->hs_len, "\r\n\r\n", 4);
    if (!end) return;
    if (c->hs_len < 12 || memcmp(c->hs, "HTTP/1.1 101", 12) != 0) {
        int line = (int)(strchr(c->hs, '\r') ? strchr(c->hs, '\r') - c->hs : 40);
        fprintf(stderr, "loadgen: upgrade refused: %.*s\n", line, c->hs);
        exit(2);
    }
    size_t used = (size_t)(end + 4 - c->hs);
    size_t rest = (size_t)c->hs_len - used;
    char *hs = c->hs;
    c->hs = NULL;
    became_open(c);
    if (rest) on_bytes(c, (const uint8_t *)hs + used, rest);
    free(hs);
}

#ifdef WITH_TLS
static void tls_step(struct conn *c) {
    int r = SSL_connect(c->ssl);
    if (r == 1) {
        set_out(c, 0);
        after_transport_ready(c);
        return;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) set_out(c, 0);
    else if (e == SSL_ERROR_WANT_WRITE) set_out(c, 1);
    else {
        ERR_print_errors_fp(stderr);
        fprintf(stderr, "loadgen: TLS handshake failed\n");
        exit(2);
    }
}
#endif

static void start_conn(int i) {
    struct conn *c = &conns[i];
    memset(c, 0, sizeof *c);
    c->is_control = (opt_mode == MODE_BROADCAST || opt_mode == MODE_HUB) && i == opt_conns;
    c->hdr_need = 2;
    c->ts = calloc((size_t)opt_window, sizeof(uint64_t));
    if (!c->ts) fail("calloc timestamps");
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) fail("socket");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt_port)};
    if (inet_pton(AF_INET, opt_host, &sa.sin_addr) != 1) fail("bad --host (IPv4 address expected)");
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) fail("connect");
    c->state = ST_CONNECTING;
    c->want_out = 1;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT};
    ev.data.u64 = (uint64_t)i;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) fail("epoll_ctl ADD");
    started++;
}

static void on_connected(struct conn *c) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        errno = err;
        fail("connect to server");
    }
#ifdef WITH_TLS
    if (opt_tls) {
        c->ssl = SSL_new(tls_ctx);
        SSL_set_fd(c->ssl, c->fd);
        SSL_set_tlsext_host_name(c->ssl, "localhost");
        c->state = ST_TLS;
        tls_step(c);
        return;
    }
#endif
    set_out(c, 0);
    after_transport_ready(c);
}

static uint8_t read_buf[READ_BUF];

static void on_readable(struct conn *c) {
    for (int rounds = 0; rounds < 64 && (c->state == ST_OPEN || c->state == ST_HANDSHAKE); rounds++) {
        long n = io_read(c, read_buf, READ_BUF);
        if (n == IO_AGAIN) break;
        if (n <= 0) {
            if (phase == PH_DONE) { conn_close(c, 0); return; }
            if (c->state != ST_OPEN) {
                fprintf(stderr, "loadgen: connection %d (%d opened so far): %s during the handshake\n",
                        (int)(c - conns), opened,
                        n == 0 ? "the server closed the connection" : strerror(errno));
                exit(2);
            }
            conn_close(c, 1);
            return;
        }
        if (c->state == ST_HANDSHAKE) on_handshake_bytes(c, read_buf, (size_t)n);
        else on_bytes(c, read_buf, (size_t)n);
#ifdef WITH_TLS
        if (c->ssl) continue;  /* TLS may hold decrypted bytes: read until WANT_READ */
#endif
        if (n < READ_BUF) break;
    }
    if (c->state == ST_OPEN || c->state == ST_HANDSHAKE) {
        if (c->pend_len || c->out_left) flush(c);
    }
}

static void on_event(struct conn *c, uint32_t events) {
    switch (c->state) {
    case ST_CONNECTING:
        on_connected(c);
        break;
#ifdef WITH_TLS
    case ST_TLS:
        tls_step(c);
        break;
#endif
    case ST_HANDSHAKE:
    case ST_OPEN:
        if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
        if ((events & EPOLLOUT) && (c->state == ST_OPEN || c->state == ST_HANDSHAKE)) flush(c);
        break;
    default:
        break;
    }
}

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen --port P [--host 127.0.0.1] [--mode echo|broadcast|idle]\n"
            "  [--conns N] [--window W] [--size BYTES] [--warmup S] [--duration S]\n"
            "  [--messages N] [--timeout S] [--server-pid PID] [--raw] [--tls]\n"
            "  [--concurrency N] [--path /]\n"
            "  hub mode: --hello FILE --hello-replies K --publish FILE [--subprotocol NAME]\n");
    exit(2);
}

/* The whole content of a file (frames built by the caller). */
static uint8_t *read_file(const char *path, uint64_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) fail(path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *data = malloc(size > 0 ? (size_t)size : 1);
    if (!data || fread(data, 1, (size_t)size, f) != (size_t)size) fail(path);
    fclose(f);
    *len = (uint64_t)size;
    return data;
}

static void parse_args(int argc, char **argv) {
    static struct option longopts[] = {
        {"host", 1, 0, 'h'},     {"port", 1, 0, 'p'},       {"mode", 1, 0, 'm'},
        {"conns", 1, 0, 'c'},    {"window", 1, 0, 'w'},     {"size", 1, 0, 's'},
        {"warmup", 1, 0, 'u'},   {"duration", 1, 0, 'd'},   {"messages", 1, 0, 'n'},
        {"timeout", 1, 0, 't'},  {"server-pid", 1, 0, 'P'}, {"raw", 0, 0, 'r'},
        {"tls", 0, 0, 'T'},      {"concurrency", 1, 0, 'C'}, {"path", 1, 0, 'a'},
        {"setup-timeout", 1, 0, 'S'}, {"subprotocol", 1, 0, 'o'}, {"hello", 1, 0, 'H'},
        {"hello-replies", 1, 0, 'R'}, {"publish", 1, 0, 'B'}, {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'h': opt_host = optarg; break;
        case 'p': opt_port = atoi(optarg); break;
        case 'm':
            if (!strcmp(optarg, "echo")) opt_mode = MODE_ECHO;
            else if (!strcmp(optarg, "broadcast")) opt_mode = MODE_BROADCAST;
            else if (!strcmp(optarg, "idle")) opt_mode = MODE_IDLE;
            else if (!strcmp(optarg, "hub")) opt_mode = MODE_HUB;
            else usage();
            break;
        case 'c': opt_conns = atoi(optarg); break;
        case 'w': opt_window = atoi(optarg); break;
        case 's': opt_size = strtoull(optarg, NULL, 10); break;
        case 'u': opt_warmup = atof(optarg); break;
        case 'd': opt_duration = atof(optarg); break;
        case 'n': opt_messages = atoi(optarg); break;
        case 't': opt_timeout = atof(optarg); break;
        case 'P': opt_server_pid = atoi(optarg); break;
        case 'r': opt_raw = 1; break;
        case 'T': opt_tls = 1; break;
        case 'C': opt_concurrency = atoi(optarg); break;
        case 'a': opt_path = optarg; break;
        case 'S': opt_setup_timeout = atof(optarg); break;
        case 'o': opt_subprotocol = optarg; break;
        case 'H': hello = read_file(optarg, &hello_len); break;
        case 'R': opt_hello_replies = atoi(optarg); break;
        case 'B': publish = read_file(optarg, &publish_len); break;
        default: usage();
        }
    }
    if (opt_port <= 0 || opt_conns <= 0 || opt_window <= 0 || opt_concurrency <= 0) usage();
    if (opt_mode == MODE_HUB && (!hello || !publish || opt_hello_replies <= 0 || opt_raw)) {
        fprintf(stderr, "loadgen: hub mode needs --hello, --hello-replies and --publish\n");
        exit(2);
    }
    if (opt_mode == MODE_BROADCAST && opt_raw) {
        fprintf(stderr, "loadgen: broadcast needs WebSocket framing, not --raw\n");
        exit(2);
    }
#ifndef WITH_TLS
    if (opt_tls) {
        fprintf(stderr, "loadgen: built without TLS support\n");
        exit(2);
    }
#endif
}

static void raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
#ifdef WITH_TLS
    if (opt_tls) {
        tls_ctx = SSL_CTX_new(TLS_client_method());
        if (!tls_ctx) fail("SSL_CTX_new");
        SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);  /* self-signed test certificate */
        SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }
#endif
    build_stream();
    nconns_total = opt_conns + (opt_mode == MODE_BROADCAST || opt_mode == MODE_HUB ? 1 : 0);
    conns = calloc((size_t)nconns_total, sizeof *conns);
    if (!conns) fail("calloc connections");
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) fail("epoll_create1");

    struct epoll_event events[1024];
    uint64_t t_start = mono_ns(), t_phase_end = 0, t0 = 0, t1 = 0;
    uint64_t setup_deadline = t_start + (uint64_t)(opt_setup_timeout * 1e9);
    double cpu_c0 = 0, cpu_c1 = 0, cpu_s0 = 0, cpu_s1 = 0;
    int target = opt_conns;   /* connections to open in the current phase */
    double setup_s = 0;

    while (phase != PH_DONE) {
        while (started < target && started - opened < opt_concurrency) start_conn(started);
        int n = epoll_wait(epfd, events, 1024, 2);
        if (n < 0 && errno != EINTR) fail("epoll_wait");
        now_ns = mono_ns();
        for (int i = 0; i < n; i++) on_event(&conns[events[i].data.u64], events[i].events);
        now_ns = mono_ns();
        if ((phase == PH_SETUP || phase == PH_CONTROL) && opened < target && now_ns > setup_deadline) {
            fprintf(stderr, "loadgen: only %d of %d connections opened before the setup timeout\n",
                    opened, target);
            exit(2);
        }
        switch (phase) {
        case PH_SETUP:
            if (opened < target || (opt_mode == MODE_HUB && ready < opt_conns)) break;
            setup_s = (now_ns - t_start) / 1e9;
            if (opt_mode == MODE_IDLE) {
                printf("ready %d\n", opened);
                fflush(stdout);
                char line[64];
                if (read(0, line, sizeof line) < 0 && errno != EINTR) fail("read stdin");
                phase = PH_DONE;
            } else if (opt_mode == MODE_ECHO) {
                sending = 1;
                for (int i = 0; i < opt_conns; i++) {
                    for (int k = 0; k < opt_window; k++) queue_message(&conns[i]);
                    flush(&conns[i]);
                }
                phase = PH_WARMUP;
                t_phase_end = now_ns + (uint64_t)(opt_warmup * 1e9);
            } else {
                phase = PH_SETTLE;   /* let the server register every receiver */
                t_phase_end = now_ns + 100000000ull;
            }
            break;
        case PH_WARMUP:
            if (now_ns < t_phase_end) break;
            messages = 0;
            memset(hist, 0, sizeof hist);
            hist_total = 0;
            cpu_c0 = cpu_self_s();
            cpu_s0 = cpu_server_s();
            t0 = mono_ns();
            t_phase_end = t0 + (uint64_t)(opt_duration * 1e9);
            phase = PH_MEASURE;
            break;
        case PH_MEASURE:
            if (now_ns < t_phase_end) break;
            t1 = mono_ns();
            cpu_c1 = cpu_self_s();
            cpu_s1 = cpu_server_s();
            sending = 0;
            phase = PH_DONE;
            break;
        case PH_SETTLE:
            if (now_ns < t_phase_end) break;
            target = opt_conns + 1;
            phase = PH_CONTROL;
            break;
        case PH_CONTROL:
            if (opened < target) break;
            {
                char text[64];
                uint8_t frame[128];
                int len = snprintf(text, sizeof text, "broadcast %d %llu", opt_messages,
                                   (unsigned long long)opt_size);
                size_t flen = build_frame(frame, 1, (const uint8_t *)text, (uint64_t)len);
                cpu_c0 = cpu_self_s();
                cpu_s0 = cpu_server_s();
                t0 = mono_ns();
                if (opt_mode == MODE_HUB) {
                    send_blob(&conns[opt_conns], publish, publish_len);
                } else {
                    queue_pend(&conns[opt_conns], frame, flen);
                    flush(&conns[opt_conns]);
                }
                t_phase_end = t0 + (uint64_t)(opt_timeout * 1e9);
                phase = PH_WAIT;
            }
            break;
        case PH_WAIT:
            if (deliveries < (uint64_t)opt_messages * (uint64_t)opt_conns && now_ns < t_phase_end) break;
            cpu_c1 = cpu_self_s();
            cpu_s1 = cpu_server_s();
            t1 = deliveries >= (uint64_t)opt_messages * (uint64_t)opt_conns ? last_delivery_ns : now_ns;
            phase = PH_DONE;
            break;
        default:
            break;
        }
    }

    /* polite goodbye where the stream sits on a frame boundary, then close */
    uint8_t close_frame[16];
    const uint8_t code[2] = {0x03, 0xe8};
    size_t close_len = build_frame(close_frame, 8, code, 2);
    for (int i = 0; i < started; i++) {
        struct conn *c = &conns[i];
        if (c->state == ST_OPEN && !c->out_left && c->pend_off == c->pend_len && !opt_raw)
            io_write(c, close_frame, close_len);
        conn_close(c, 0);
    }

    double elapsed = (t1 > t0) ? (t1 - t0) / 1e9 : 0;
    double server_cpu = (cpu_s0 >= 0 && cpu_s1 >= 0) ? cpu_s1 - cpu_s0 : -1;
    if (opt_mode == MODE_ECHO) {
        printf("{\"mode\": \"echo\", \"connections\": %d, \"window\": %d, \"size\": %llu, "
               "\"tls\": %s, \"seconds\": %.6f, \"messages\": %llu, \"msgs_per_s\": %.1f, "
               "\"p50_us\": %.2f, \"p99_us\": %.2f, \"p999_us\": %.2f, "
               "\"client_cpu_s\": %.6f, \"server_cpu_s\": %.6f, \"bad_sizes\": %llu, "
               "\"errors\": %llu, \"setup_s\": %.3f}\n",
               opt_conns, opt_window, (unsigned long long)opt_size, opt_tls ? "true" : "false",
               elapsed, (unsigned long long)messages, elapsed > 0 ? messages / elapsed : 0,
               hist_percentile_us(0.50), hist_percentile_us(0.99), hist_percentile_us(0.999),
               cpu_c1 - cpu_c0, server_cpu, (unsigned long long)bad_sizes,
               (unsigned long long)errors, setup_s);
    } else if (opt_mode == MODE_BROADCAST || opt_mode == MODE_HUB) {
        uint64_t expected = (uint64_t)opt_messages * (uint64_t)opt_conns;
        printf("{\"mode\": \"%s\", \"connections\": %d, \"messages\": %d, \"size\": %llu, "
               "\"expected\": %llu, \"deliveries\": %llu, \"complete\": %s, \"seconds\": %.6f, "
               "\"deliveries_per_s\": %.1f, \"first_delivery_us\": %.1f, "
               "\"client_cpu_s\": %.6f, \"server_cpu_s\": %.6f, \"bad_sizes\": %llu, "
               "\"errors\": %llu, \"setup_s\": %.3f}\n",
               opt_mode == MODE_HUB ? "hub" : "broadcast", opt_conns, opt_messages,
               (unsigned long long)opt_size, (unsigned long long)expected, (unsigned long long)deliveries,
               deliveries >= expected ? "true" : "false", elapsed,
               elapsed > 0 ? deliveries / elapsed : 0,
               first_delivery_ns > t0 ? (first_delivery_ns - t0) / 1e3 : 0,
               cpu_c1 - cpu_c0, server_cpu, (unsigned long long)bad_sizes,
               (unsigned long long)errors, setup_s);
    } else {
        printf("{\"mode\": \"idle\", \"connections\": %d, \"errors\": %llu, \"setup_s\": %.3f}\n",
               opened, (unsigned long long)errors, setup_s);
    }
    return 0;
}
