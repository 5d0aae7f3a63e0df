/*
 * Hub-protocol client fleet and publisher for `python -m bench scale`.
 *
 * Why C, and why apart from loadgen.c: holding 19,000 subscribed, heart-beating
 * clients per process must cost the machine far less than the hub it measures,
 * and these clients live for minutes (reconnecting, resubscribing, counting)
 * where loadgen.c runs one short burst.
 *
 * Clients (default): N connections to /connection, opened at --rate per second
 * from the --sources addresses in turn. Each sends connect with --token, then
 * subscribes to "<prefix><i mod K>" (i counts from --first) and to --shared.
 * Pings are answered. Every publication is counted per subscription by offset:
 * an offset already seen is a duplicate, a jump is a gap. The data's "t"
 * (microseconds since the epoch, set by the publisher) gives the delivery
 * latency. A dropped client reconnects after a full-jitter backoff
 * (uniform in [0, min(cap, base * 2^attempt)]) and resubscribes with since
 * (epoch, offset); the publications it missed come in the reply. A subscription
 * the hub ends with an `unsubscribe` push (its position may be lost after a
 * broker outage) is subscribed again with since at once, as the hub's clients do.
 * Commands on stdin, one a line: "report" prints one JSON line of counters and
 * latency percentiles (ms) since the last "reset"; "histogram" prints the latency
 * histogram's non-empty buckets; "reset" clears it; "quit" exits.
 *
 * Publisher (--publish COUNT): COUNT HTTP API calls at --rate per second, one
 * per connection (the hub closes HTTP connections after each answer), at most
 * --concurrency in flight: POST /api/publish to --shared, or with --channels K
 * POST /api/broadcast to all K channels at once. Prints one JSON line at the end.
 *
 * Build: gcc -O2 bench/hubload.c -o hubload
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum { DOWN, TCP, UPGRADE, CONNECT, SUBSCRIBE, READY, HTTP_SENT };

#define MAX_SOURCES 64
#define HIST_STEP_US 100
#define HIST_BUCKETS 300000 /* 100 us steps up to 30 s */
#define OPEN_TIMEOUT 30.0
#define HEADER_DONE 99

struct sub {
    char epoch[48];
    int64_t offset;
    int known;
};

struct client {
    int fd, state, attempt, index, subscribed;
    double retry_at, since;
    struct sub subs[2]; /* own channel, shared channel */
    char *out;
    int out_len, out_off;
    char *in; /* upgrade response, then the message being assembled */
    uint32_t in_len, in_cap;
    uint8_t hdr[14];
    int hdr_have; /* header bytes read, or HEADER_DONE while its payload is read */
    uint64_t left;
};

static const char *host = "127.0.0.1", *token = "", *prefix = "c", *shared = "all", *api_key = "";
static int port, nclients = 1, first, nchannels = 0, concurrency = 500;
static double rate = 1000, backoff_base = 0.5, backoff_cap = 5.0;
static long publish_count = -1;
static struct in_addr sources[MAX_SOURCES];
static int nsources;
static struct client *clients;
static int epfd;
static uint32_t hist[HIST_BUCKETS];
static uint64_t hist_count, hist_max_us;
static struct {
    uint64_t upgrades, readies, drops, failed_opens, live, recovered, dups, gaps, unrecovered,
        epoch_changes, errors, pings, resubscribes;
} n;
static int inflight, ready_now;
static char buf[1 << 18];

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int64_t wall_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void die(const char *what) {
    perror(what);
    exit(2);
}

/* ---- output ---- */

static void arm(struct client *c, int out) {
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static int flush(struct client *c) {
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN) {
                arm(c, 1);
                return 0;
            }
            return -1;
        }
        c->out_off += w;
    }
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = 0;
    arm(c, 0);
    return 0;
}

static int queue(struct client *c, const char *data, int len) {
    c->out = realloc(c->out, c->out_len + len);
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    return flush(c);
}

/* A client frame: masked with the all-zero key, so the payload goes as it is. */
static int frame(struct client *c, int opcode, const char *payload, int len) {
    char f[16 + 4096];
    int h = 0;
    if (len > 4096) return -1;
    f[h++] = (char)(0x80 | opcode);
    if (len < 126) {
        f[h++] = (char)(0x80 | len);
    } else {
        f[h++] = (char)(0x80 | 126);
        f[h++] = (char)(len >> 8);
        f[h++] = (char)(len & 0xff);
    }
    memset(f + h, 0, 4);
    h += 4;
    memcpy(f + h, payload, len);
    return queue(c, f, h + len);
}

/* ---- life cycle of a client ---- */

static void schedule_retry(struct client *c) {
    double cap = backoff_base * (double)(1 << (c->attempt < 16 ? c->attempt : 16));
    if (cap > backoff_cap) cap = backoff_cap;
    c->retry_at = now() + cap * ((double)rand() / RAND_MAX);
}

static void drop(struct client *c) {
    if (c->state == DOWN) return;
    if (c->fd >= 0) close(c->fd);
    if (c->state == READY) {
        n.drops++;
        ready_now--;
    } else {
        n.failed_opens++;
        inflight--;
    }
    c->fd = -1;
    c->state = DOWN;
    free(c->out);
    free(c->in);
    c->out = c->in = NULL;
    c->out_len = c->out_off = 0;
    c->in_len = c->in_cap = 0;
    c->hdr_have = 0;
    c->left = 0;
    c->attempt++;
    schedule_retry(c);
}

static void open_client(struct client *c) {
    struct sockaddr_in src = {.sin_family = AF_INET}, dst = {.sin_family = AF_INET};
    int one = 1;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) die("socket");
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (nsources) {
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        src.sin_addr = sources[c->index % nsources];
        if (bind(c->fd, (struct sockaddr *)&src, sizeof src) < 0) die("bind");
    }
    dst.sin_port = htons(port);
    inet_pton(AF_INET, host, &dst.sin_addr);
    c->state = TCP;
    c->since = now();
    inflight++;
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
    if (connect(c->fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS) drop(c);
}

static void send_upgrade(struct client *c) {
    char req[512];
    int len = snprintf(req, sizeof req,
                       "GET /connection HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n",
                       host, port);
    c->state = UPGRADE;
    if (queue(c, req, len) < 0) drop(c);
}

static void send_subscribe(struct client *c, int which, int id) {
    char cmd[256], since[128] = "";
    struct sub *s = &c->subs[which];
    char own[64];
    snprintf(own, sizeof own, "%s%d", prefix, (first + c->index) % nchannels);
    if (s->known)
        snprintf(since, sizeof since, ",\"since\":{\"epoch\":\"%s\",\"offset\":%lld}", s->epoch,
                 (long long)s->offset);
    int len = snprintf(cmd, sizeof cmd, "{\"id\":%d,\"method\":\"subscribe\",\"params\":{\"channel\":\"%s\"%s}}",
                       id, which ? shared : own, since);
    frame(c, 1, cmd, len);
}

/* ---- what the hub sends ---- */

static const char *find(const char *hay, const char *end, const char *needle) {
    return memmem(hay, end - hay, needle, strlen(needle));
}

static int64_t number_after(const char *at, const char *key, const char *end, int *ok) {
    const char *p = find(at, end, key);
    *ok = p != NULL;
    return p ? strtoll(p + strlen(key), NULL, 10) : 0;
}

static void record_latency(int64_t sent_us) {
    int64_t lat = wall_us() - sent_us;
    if (lat < 0) lat = 0;
    uint64_t b = lat / HIST_STEP_US;
    hist[b < HIST_BUCKETS ? b : HIST_BUCKETS - 1]++;
    hist_count++;
    if ((uint64_t)lat > hist_max_us) hist_max_us = lat;
}

/* One publication at `offset` for subscription `s`, `how` it came (the first few
 * duplicates are told on stderr, so that where they come from can be seen). */
static void deliver(struct client *c, struct sub *s, int64_t offset, const char *how) {
    if (offset <= s->offset) {
        if (n.dups++ < 5)
            fprintf(stderr, "hubload: duplicate: client %d %s %s offset %lld, held %lld, state %d\n",
                    c->index, s == &c->subs[1] ? shared : "own", how, (long long)offset,
                    (long long)s->offset, c->state);
        return;
    }
    if (offset > s->offset + 1) n.gaps += offset - s->offset - 1;
    s->offset = offset;
}

static void on_subscribed(struct client *c, struct sub *s, const char *msg, const char *end) {
    int ok;
    const char *e = find(msg, end, "\"epoch\":\"");
    const char *pubs = find(msg, end, "\"publications\":[");
    if (!e || !pubs) {
        n.errors++;
        return;
    }
    e += 9;
    const char *q = memchr(e, '"', end - e);
    int elen = q ? (int)(q - e) : 0;
    if (elen >= (int)sizeof s->epoch) elen = sizeof s->epoch - 1;
    int64_t offset = number_after(msg, "\"offset\":", pubs, &ok);
    int same_epoch = s->known && (int)strlen(s->epoch) == elen && !memcmp(s->epoch, e, elen);
    int recovered = find(msg, pubs, "\"recovered\":true") != NULL;
    if (s->known && recovered) {
        const char *p = pubs;
        while ((p = find(p, end, "\"offset\":")) != NULL) {
            p += 9;
            deliver(c, s, strtoll(p, NULL, 10), "in the reply");
            n.recovered++;
        }
        if (offset > s->offset) n.gaps += offset - s->offset;
    } else if (s->known) {
        n.unrecovered++;
        if (same_epoch && offset > s->offset) n.gaps += offset - s->offset;
        if (!same_epoch) n.epoch_changes++;
    }
    memcpy(s->epoch, e, elen);
    s->epoch[elen] = 0;
    s->offset = offset;
    s->known = 1;
}

static void on_message(struct client *c, const char *msg, uint32_t len) {
    const char *end = msg + len;
    int ok;
    if (find(msg, end, "\"push\":\"pub\"")) {
        const char *ch = find(msg, end, "\"channel\":\"");
        if (!ch) return;
        ch += 11;
        int is_shared = !strncmp(ch, shared, strlen(shared)) && ch[strlen(shared)] == '"';
        int64_t offset = number_after(msg, "\"offset\":", end, &ok);
        deliver(c, &c->subs[is_shared], offset, "live");
        n.live++;
        const char *data = find(msg, end, "\"data\":");
        if (data) {
            int64_t t = number_after(data, "\"t\":", end, &ok);
            if (ok) record_latency(t);
        }
        return;
    }
    if (find(msg, end, "\"push\":\"unsubscribe\"")) {
        const char *ch = find(msg, end, "\"channel\":\"");
        if (ch && c->state == READY) {
            ch += 11;
            int is_shared = !strncmp(ch, shared, strlen(shared)) && ch[strlen(shared)] == '"';
            n.resubscribes++;
            send_subscribe(c, is_shared, 2 + is_shared);
        }
        return;
    }
    if (find(msg, end, "\"push\":")) return; /* disconnect: the close follows */
    int64_t id = number_after(msg, "\"id\":", end, &ok);
    if (find(msg, end, "\"error\":")) {
        if (n.errors++ < 5) fprintf(stderr, "hubload: %.*s\n", (int)(len < 300 ? len : 300), msg);
        if (c->state != READY || id == 2 || id == 3) drop(c); /* a failed resubscribe: reconnect */
        return;
    }
    if (id == 1 && c->state == CONNECT) {
        c->state = SUBSCRIBE;
        c->subscribed = 0;
        send_subscribe(c, 0, 2);
        send_subscribe(c, 1, 3);
    } else if ((id == 2 || id == 3) && c->state == READY) {
        on_subscribed(c, &c->subs[id - 2], msg, end); /* subscribed again after an unsubscribe push */
    } else if ((id == 2 || id == 3) && c->state == SUBSCRIBE) {
        on_subscribed(c, &c->subs[id - 2], msg, end);
        if (++c->subscribed == 2) {
            c->state = READY;
            c->attempt = 0;
            inflight--;
            ready_now++;
            n.readies++;
        }
    }
}

static void on_upgraded(struct client *c) {
    char cmd[2048];
    int len = snprintf(cmd, sizeof cmd, "{\"id\":1,\"method\":\"connect\",\"params\":{\"token\":\"%s\"}}", token);
    n.upgrades++;
    c->state = CONNECT;
    frame(c, 1, cmd, len);
}

static void append(struct client *c, const char *data, uint32_t len) {
    if (c->in_len + len > c->in_cap) {
        c->in_cap = (c->in_len + len) * 2;
        c->in = realloc(c->in, c->in_cap);
    }
    memcpy(c->in + c->in_len, data, len);
    c->in_len += len;
}

/* Frames in `data`: -1 when the connection is to be dropped, -2 when it was. */
static int parse_frames(struct client *c, const char *data, ssize_t len) {
    ssize_t i = 0;
    while (i < len) {
        if (c->hdr_have != HEADER_DONE) {
            c->hdr[c->hdr_have++] = data[i++];
            if (c->hdr_have < 2) continue;
            int l7 = c->hdr[1] & 0x7f, need = l7 == 126 ? 4 : l7 == 127 ? 10 : 2;
            if (c->hdr_have < need) continue;
            uint64_t plen = l7;
            if (l7 == 126) plen = ((uint64_t)c->hdr[2] << 8) | c->hdr[3];
            if (l7 == 127) {
                plen = 0;
                for (int k = 2; k < 10; k++) plen = (plen << 8) | c->hdr[k];
            }
            if (plen > (64u << 20)) return -1;
            c->left = plen;
            c->hdr_have = HEADER_DONE;
        }
        uint64_t take = (uint64_t)(len - i) < c->left ? (uint64_t)(len - i) : c->left;
        if (take) append(c, data + i, (uint32_t)take);
        i += take;
        c->left -= take;
        if (c->left) return 0;
        int op = c->hdr[0] & 0x0f;
        c->hdr_have = 0;
        if (op == 9) { /* ping: the pong carries its payload */
            char payload[128];
            uint32_t m = c->in_len < sizeof payload ? c->in_len : sizeof payload;
            n.pings++;
            memcpy(payload, c->in, m);
            c->in_len = 0;
            if (frame(c, 10, payload, m) < 0) return -1;
        } else if (op == 8) {
            return -1;
        } else if (op == 10) {
            c->in_len = 0;
        } else if (c->hdr[0] & 0x80) {
            on_message(c, c->in, c->in_len);
            if (c->state == DOWN) return -2;
            c->in_len = 0;
        }
    }
    return 0;
}

static void on_readable(struct client *c) {
    for (;;) {
        ssize_t r = recv(c->fd, buf, sizeof buf, 0);
        if (r == 0 || (r < 0 && errno != EAGAIN)) {
            drop(c);
            return;
        }
        if (r < 0) return;
        const char *data = buf;
        if (c->state == UPGRADE) {
            append(c, buf, r);
            char *head_end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
            if (!head_end) continue;
            if (c->in_len < 12 || memcmp(c->in + 9, "101", 3)) {
                if (n.errors++ < 5) fprintf(stderr, "hubload: refused: %.40s\n", c->in);
                drop(c);
                return;
            }
            uint32_t rest = c->in_len - (uint32_t)(head_end + 4 - c->in);
            memmove(buf, head_end + 4, rest);
            c->in_len = 0;
            on_upgraded(c);
            if (c->state == DOWN) return;
            r = rest;
        }
        int res = parse_frames(c, data, r);
        if (res == -1) drop(c);
        if (res < 0) return;
    }
}

/* ---- stdin commands ---- */

static double percentile(double q) {
    if (!hist_count) return 0;
    uint64_t want = (uint64_t)(q * hist_count), seen = 0;
    for (int b = 0; b < HIST_BUCKETS; b++) {
        seen += hist[b];
        if (seen > want) return (b + 0.5) * HIST_STEP_US / 1000.0;
    }
    return hist_max_us / 1000.0;
}

static void report(void) {
    printf("{\"clients\":%d,\"ready\":%d,\"inflight\":%d,\"upgrades\":%lu,\"readies\":%lu,"
           "\"drops\":%lu,\"failed_opens\":%lu,\"live\":%lu,\"recovered\":%lu,\"duplicates\":%lu,"
           "\"gaps\":%lu,\"unrecovered\":%lu,\"epoch_changes\":%lu,\"errors\":%lu,\"pings\":%lu,"
           "\"resubscribes\":%lu,"
           "\"latency\":{\"count\":%lu,\"p50\":%.2f,\"p99\":%.2f,\"max\":%.2f}}\n",
           nclients, ready_now, inflight, n.upgrades, n.readies, n.drops, n.failed_opens, n.live,
           n.recovered, n.dups, n.gaps, n.unrecovered, n.epoch_changes, n.errors, n.pings, n.resubscribes,
           hist_count, percentile(0.5), percentile(0.99), hist_max_us / 1000.0);
    fflush(stdout);
}

/* The latency histogram since the last reset, as "bucket count" pairs on one line
 * (bucket b holds latencies in [b, b + 1) * 100 us), so several processes merge exactly. */
static void histogram(void) {
    printf("{\"step_us\":%d,\"max_us\":%lu,\"buckets\":[", HIST_STEP_US, hist_max_us);
    int comma = 0;
    for (int b = 0; b < HIST_BUCKETS; b++)
        if (hist[b]) {
            printf("%s[%d,%u]", comma ? "," : "", b, hist[b]);
            comma = 1;
        }
    printf("]}\n");
    fflush(stdout);
}

static int on_stdin(void) {
    static char line[256];
    static int have;
    ssize_t r = read(0, line + have, sizeof line - 1 - have);
    if (r <= 0) return -1;
    have += r;
    char *nl;
    while ((nl = memchr(line, '\n', have)) != NULL) {
        *nl = 0;
        if (!strcmp(line, "report")) report();
        else if (!strcmp(line, "histogram")) histogram();
        else if (!strcmp(line, "reset")) {
            memset(hist, 0, sizeof hist);
            hist_count = hist_max_us = 0;
        } else if (!strcmp(line, "quit")) return -1;
        int used = nl + 1 - line;
        memmove(line, nl + 1, have - used);
        have -= used;
    }
    return 0;
}

/* ---- the publisher ---- */

static int publish_body(char *out, int cap, long seq) {
    int len;
    if (nchannels > 0) {
        len = snprintf(out, cap, "{\"channels\":[");
        for (int k = 0; k < nchannels; k++)
            len += snprintf(out + len, cap - len, "%s\"%s%d\"", k ? "," : "", prefix, k);
        len += snprintf(out + len, cap - len, "],\"data\":{\"t\":%lld,\"s\":%ld}}", (long long)wall_us(), seq);
    } else {
        len = snprintf(out, cap, "{\"channel\":\"%s\",\"data\":{\"t\":%lld,\"s\":%ld}}", shared,
                       (long long)wall_us(), seq);
    }
    return len;
}

static int run_publisher(void) {
    long sent = 0, ok = 0, failed = 0, done = 0;
    struct client *slots = calloc(concurrency, sizeof *slots);
    double start = now();
    struct epoll_event events[256];
    for (int k = 0; k < concurrency; k++) slots[k].fd = -1;
    while (done < publish_count && now() - start < 3600) {
        long due = (long)((now() - start) * rate) + 1;
        if (due > publish_count) due = publish_count;
        for (int k = 0; k < concurrency && sent < due; k++) {
            struct client *c = &slots[k];
            if (c->fd >= 0) continue;
            char body[8192], req[9000];
            int blen = publish_body(body, sizeof body, sent);
            int len = snprintf(req, sizeof req,
                               "POST /api/%s HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: apikey %s\r\n"
                               "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                               nchannels > 0 ? "broadcast" : "publish", host, port, api_key, blen, body);
            struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(port)};
            inet_pton(AF_INET, host, &dst.sin_addr);
            c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            c->index = k;
            connect(c->fd, (struct sockaddr *)&dst, sizeof dst);
            c->out = malloc(len);
            memcpy(c->out, req, len);
            c->out_len = len;
            c->out_off = 0;
            c->in_len = 0;
            c->state = HTTP_SENT;
            struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
            epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
            sent++;
        }
        int ne = epoll_wait(epfd, events, 256, 2);
        for (int e = 0; e < ne; e++) {
            struct client *c = events[e].data.ptr;
            if (c->out && (events[e].events & EPOLLOUT)) {
                if (flush(c) < 0) goto failed;
            }
            if (events[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                ssize_t r = recv(c->fd, buf, sizeof buf, 0);
                if (r < 0 && errno == EAGAIN) continue;
                if (r > 0) append(c, buf, r);
                if (r > 0 && !memmem(c->in, c->in_len, "\r\n\r\n", 4)) continue;
                if (c->in_len >= 12 && !memcmp(c->in + 9, "200", 3)) ok++;
                else {
                failed:
                    if (failed++ < 5)
                        fprintf(stderr, "hubload: publish failed: %.*s\n", (int)(c->in_len < 60 ? c->in_len : 60),
                                c->in ? c->in : "");
                }
                close(c->fd);
                c->fd = -1;
                free(c->in);
                free(c->out);
                c->in = c->out = NULL;
                c->in_len = c->in_cap = 0;
                done++;
            }
        }
    }
    double elapsed = now() - start;
    printf("{\"sent\":%ld,\"ok\":%ld,\"failed\":%ld,\"seconds\":%.3f,\"rate\":%.1f}\n", sent, ok, failed,
           elapsed, done / elapsed);
    return failed ? 1 : 0;
}

/* ---- main ---- */

static void parse_sources(char *list) {
    for (char *s = strtok(list, ","); s && nsources < MAX_SOURCES; s = strtok(NULL, ","))
        if (inet_pton(AF_INET, s, &sources[nsources]) == 1) nsources++;
}

int main(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--host")) host = v;
        else if (!strcmp(k, "--port")) port = atoi(v);
        else if (!strcmp(k, "--clients")) nclients = atoi(v);
        else if (!strcmp(k, "--first")) first = atoi(v);
        else if (!strcmp(k, "--channels")) nchannels = atoi(v);
        else if (!strcmp(k, "--prefix")) prefix = v;
        else if (!strcmp(k, "--shared")) shared = v;
        else if (!strcmp(k, "--token")) token = v;
        else if (!strcmp(k, "--api-key")) api_key = v;
        else if (!strcmp(k, "--rate")) rate = atof(v);
        else if (!strcmp(k, "--concurrency")) concurrency = atoi(v);
        else if (!strcmp(k, "--backoff-base")) backoff_base = atof(v);
        else if (!strcmp(k, "--backoff-cap")) backoff_cap = atof(v);
        else if (!strcmp(k, "--sources")) parse_sources(argv[i + 1]);
        else if (!strcmp(k, "--publish")) publish_count = atol(v);
        else {
            fprintf(stderr, "hubload: unknown option %s\n", k);
            return 2;
        }
    }
    if (!port) {
        fprintf(stderr, "hubload: --port is required\n");
        return 2;
    }
    epfd = epoll_create1(0);
    srand((unsigned)(getpid() ^ wall_us()));
    if (publish_count >= 0) return run_publisher();
    if (nchannels <= 0) nchannels = 1;
    clients = calloc(nclients, sizeof *clients);
    for (int i = 0; i < nclients; i++) {
        clients[i].fd = -1;
        clients[i].index = i;
        clients[i].retry_at = -1;
    }
    struct epoll_event sin = {.events = EPOLLIN, .data.ptr = NULL}, events[512];
    epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &sin);
    double start = now(), last_scan = start;
    int started = 0;
    for (;;) {
        double t = now();
        long due = (long)((t - start) * rate) + 1;
        while (started < nclients && started < due && inflight < concurrency) open_client(&clients[started++]);
        if (t - last_scan > 0.05) {
            last_scan = t;
            for (int i = 0; i < started; i++) {
                struct client *c = &clients[i];
                if (c->state == DOWN && c->retry_at <= t && inflight < concurrency) open_client(c);
                else if (c->state != DOWN && c->state != READY && t - c->since > OPEN_TIMEOUT) drop(c);
            }
        }
        int ne = epoll_wait(epfd, events, 512, 5);
        for (int e = 0; e < ne; e++) {
            struct client *c = events[e].data.ptr;
            if (!c) {
                if (on_stdin() < 0) return 0;
                continue;
            }
            if (c->state == DOWN) continue;
            if (events[e].events & (EPOLLERR | EPOLLHUP) && !(events[e].events & EPOLLIN)) {
                drop(c);
                continue;
            }
            if (c->state == TCP) {
                int err = 0;
                socklen_t l = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
                if (err) {
                    drop(c);
                    continue;
                }
                send_upgrade(c);
                continue;
            }
            if ((events[e].events & EPOLLOUT) && c->out && flush(c) < 0) {
                drop(c);
                continue;
            }
            if (events[e].events & EPOLLIN) on_readable(c);
        }
    }
}
