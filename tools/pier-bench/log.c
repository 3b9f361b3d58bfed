/* log.c - pier-bench log: the batch protocol through libpier.
 *
 *   pier-bench log [--mode publish|e2e|latency] [--nodes host:port,...] [options]
 *
 * Publishes messages through libpier's batch publisher (client/pier.h) to
 * the batch ports of --nodes (default 127.0.0.1:8379).
 *   publish   time from the first publish to pier_flush, i.e. until every
 *             batch is acknowledged (ack level >= 1).
 *   e2e       a subscriber (on the first node, from "$") consumes while
 *             publishing; timed to the last message consumed.
 *   latency   as e2e, with a send timestamp in each message: the
 *             subscriber records publish-to-consume latency per message;
 *             --rate paces publishing so the figure is latency, not
 *             queueing; --cdf writes the CDF.
 * Nodes of a pier cluster make each publisher one striped publisher
 * (libpier's cluster mode): --order-level, --ack-level and --replication
 * go into its handshake; --kill-leader-at (logkill.c) kills the leader
 * mid-run and measures the stall; --verify (logcheck.c) checks what the
 * subscribers of every node received.
 * The topic (bench:log:<pid> unless --topic) is deleted afterwards, over
 * RESP (each node's batch port - 1000, or --resp), if the run created it;
 * --keep keeps it. Output: MiB/s, GB/s, messages/s, a per-node table, or
 * JSON/CSV (bench.h). */
#include <errno.h>
#include <getopt.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

const char *const log_mode_names[] = {"publish", "e2e", "latency"};
#define mode_names log_mode_names
static const char *const codec_names[] = {"none", "lz4", "zstd"};
static const char *const pattern_names[] = {"random", "text", "zeros"};

typedef struct pub_thread {
    pthread_t tid;
    log_run *run;
    int index;                     /* thread number: publisher index % publishers */
    uint64_t first, count;         /* message index range */
    int rc;
} pub_thread;

static void usage(void) {
    printf("usage: pier-bench log [options]\n"
           "The batch protocol through libpier: publish, publish while a subscriber\n"
           "consumes (e2e), or publish-to-consume latency.\n"
           "  --mode m            publish | e2e | latency (publish)\n"
           "  --nodes h:p,...     batch ports of the nodes (127.0.0.1:8379)\n"
           "  -n, --requests n    messages to publish (default: --total / -d)\n"
           "  --total bytes       bytes to publish (1gb)\n"
           "  -d, --size bytes    message size (4kb; -s too); sizes take the server's\n"
           "                      units: 1kb = 1024, 1k = 1000, mb, gb\n"
           "  --conns n           connections per node (1)\n"
           "  --threads n         publishing threads (1)\n"
           "  --ack-level 0|1|2   ack level (1; --ack too): 0 none, 1 stored on the node\n"
           "                      (and, at order level 2, ordered), 2 stored on\n"
           "                      --replication nodes and ordered (cluster mode)\n"
           "  --order-level 0|1|2 order level (1): 0 none, 1 each publisher's batches in\n"
           "                      order, 2 one total order on every node\n"
           "  --replication n     replication factor asked for (0 = the topic's)\n"
           "  --publishers n      publishers, i.e. client ids (1); thread i publishes\n"
           "                      through publisher i %% n (--threads grows to n)\n"
           "  --kill-leader-at s  SIGKILL the cluster's leader (INFO cluster on the RESP\n"
           "                      ports; the pid from INFO server) s seconds into the run;\n"
           "                      reports the stall (the longest time without an ACK from\n"
           "                      the kill on) and the throughput before and after\n"
           "  --verify            a subscriber on every node checks every message arrives\n"
           "                      exactly once, each thread's in order (order level >= 1),\n"
           "                      and (cluster) the same sequence on every node; -d >= 20\n"
           "  --codec c           none | lz4 | zstd (lz4)\n"
           "  --threshold bytes   compress batches at least this large (64kb)\n"
           "  --no-adaptive       compress every batch over the threshold\n"
           "  --pattern p         random | text | zeros (random)\n"
           "  --batch bytes       batch size (2mb)\n"
           "  --linger us         flush partial batches after (1000)\n"
           "  --zerocopy bytes    MSG_ZEROCOPY for batches >= bytes (0 = off)\n"
           "  --rate msgs/s       pace publishing (latency mode; 0 = unpaced)\n"
           "  --topic key         stream key (bench:log:<pid>)\n"
           "  --keep              keep the topic (deleted after the run when the run\n"
           "                      created it)\n"
           "  --resp h:p,...      the nodes' RESP ports, to delete the topic on and for\n"
           "                      --kill-leader-at (batch port - 1000)\n"
           "  --cdf file          latency mode: write the latency CDF (percentile, us)\n"
           "  --verbose           libpier's informational lines too\n"
           COMMON_USAGE);
}

static const struct option longopts[] = {
    {"mode", required_argument, 0, 'M'},      {"nodes", required_argument, 0, 'N'},
    {"requests", required_argument, 0, 'n'},  {"total", required_argument, 0, 't'},
    {"size", required_argument, 0, 'd'},      {"conns", required_argument, 0, 'C'},
    {"threads", required_argument, 0, 'T'},   {"ack", required_argument, 0, 'a'},
    {"codec", required_argument, 0, 'z'},     {"threshold", required_argument, 0, 'm'},
    {"no-adaptive", no_argument, 0, 'A'},     {"pattern", required_argument, 0, 'x'},
    {"batch", required_argument, 0, 'b'},     {"linger", required_argument, 0, 'l'},
    {"zerocopy", required_argument, 0, 'Z'},  {"rate", required_argument, 0, 'r'},
    {"topic", required_argument, 0, 'k'},     {"cdf", required_argument, 0, 'f'},
    {"keep", no_argument, 0, 'K'},            {"resp", required_argument, 0, 'R'},
    {"verbose", no_argument, 0, 'v'},         {"ack-level", required_argument, 0, 'a'},
    {"order-level", required_argument, 0, 'O'}, {"replication", required_argument, 0, 'P'},
    {"publishers", required_argument, 0, 'U'},  {"kill-leader-at", required_argument, 0, 'X'},
    {"verify", no_argument, 0, 'V'},            COMMON_LONGOPTS,
    {0, 0, 0, 0}};

/* Flags whose meaning in log mode was different before they got one
 * meaning in every mode. */
static void removed_meaning(int ch, const char *arg) {
    if (ch == 'n' && strchr(arg, ':'))
        die("-n is the number of messages (requests) in log mode too, as in every mode; "
            "give the batch ports with --nodes %s", arg);
    if (ch == 'c')
        die("-c is the number of clients in every mode; the publisher's connections per "
            "node are --conns %s", arg);
}

static void log_option(log_options *o, int ch, const char *arg) {
    switch (ch) {
    case 'N': o->node_count = parse_nodes("--nodes", arg, o->nodes); break;
    case 'R': o->resp_count = parse_nodes("--resp", arg, o->resp); break;
    case 'n': o->messages = opt_int("-n", arg, 1, (long long)1 << 48); break;
    case 't': o->total_bytes = (uint64_t)opt_size("--total", arg, 1, (long long)1 << 50); break;
    case 'd': case 's': o->msg_size = (size_t)opt_size("-d", arg, 16, POOL_BYTES / 2); break;
    case 'C': o->conns = (int)opt_int("--conns", arg, 1, 256); break;
    case 'T': o->threads = (int)opt_int("--threads", arg, 1, 1024); break;
    case 'a': o->ack_level = (int)opt_int("--ack-level", arg, 0, 2); break;
    case 'O': o->order_level = (int)opt_int("--order-level", arg, 0, 2); break;
    case 'P': o->replication = (int)opt_int("--replication", arg, 0, 255); break;
    case 'U': o->publishers = (int)opt_int("--publishers", arg, 1, MAX_PUBLISHERS); break;
    case 'X': o->kill_at = opt_num("--kill-leader-at", arg, 0.001, 1e6); break;
    case 'V': o->verify = 1; break;
    case 'z': o->codec = (enum pier_codec)opt_enum("--codec", arg, codec_names, 3); break;
    case 'm': o->threshold = (size_t)opt_size("--threshold", arg, 0, 1LL << 30); break;
    case 'A': o->adaptive = 0; break;
    case 'x': o->pattern = opt_enum("--pattern", arg, pattern_names, 3); break;
    case 'b': o->batch_bytes = (size_t)opt_size("--batch", arg, 64, 64LL << 20); break;
    case 'l': o->linger_us = (unsigned)opt_int("--linger", arg, 0, 60000000); break;
    case 'Z': o->zerocopy = (size_t)opt_size("--zerocopy", arg, 0, 1LL << 30); break;
    case 'r': o->rate = opt_num("--rate", arg, 0, 1e12); break;
    case 'k': o->topic = arg; break;
    case 'f': o->cdf_path = arg; break;
    case 'K': o->keep = 1; break;
    case 'v': o->verbose = 1; break;
    case 'M': o->mode = opt_enum("--mode", arg, mode_names, 3); break;
    default: fprintf(stderr, "see pier-bench log --help\n"); exit(2);
    }
}

static void log_parse(int argc, char **argv, log_options *o) {
    static char topic[64];
    snprintf(topic, sizeof topic, "bench:log:%d", (int)getpid());
    *o = (log_options){.c = {.mode = "log"}, .msg_size = 4096, .total_bytes = 1ull << 30,
                       .conns = 1, .threads = 1, .publishers = 1, .ack_level = 1,
                       .order_level = 1, .codec = PIER_CODEC_LZ4,
                       .threshold = 64 * 1024, .adaptive = 1, .batch_bytes = 2u << 20,
                       .linger_us = 1000, .topic = topic};
    int ch;
    while ((ch = getopt_long(argc, argv, "n:d:s:c:q", longopts, NULL)) != -1) {
        if (common_option(&o->c, ch, optarg, usage)) continue;
        removed_meaning(ch, optarg);
        log_option(o, ch, optarg);
    }
    if (optind < argc) die("unexpected argument '%s' (see pier-bench log --help)", argv[optind]);
    common_check(&o->c);
    if (o->node_count == 0) o->node_count = parse_nodes("--nodes", "127.0.0.1:8379", o->nodes);
    if (o->resp_count && o->resp_count != o->node_count)
        die("--resp needs one RESP port per node of --nodes (%d)", o->node_count);
    if (o->messages) o->total_bytes = (uint64_t)o->messages * o->msg_size;
    if (o->total_bytes < o->msg_size) die("--total is less than one message of -d bytes");
    if (o->verify && o->msg_size < VERIFY_MIN_SIZE)
        die("--verify stamps each message: -d must be at least %d bytes", VERIFY_MIN_SIZE);
    if (o->threads < o->publishers) o->threads = o->publishers;
    for (int i = 0; i < o->node_count; i++) o->node_addrs[i] = o->nodes[i].addr;
    nodes_string(o->nodes, o->node_count, o->nodes_str, sizeof o->nodes_str);
    nodes_string(o->resp, o->resp_count, o->resp_str, sizeof o->resp_str);
}

/* --- the topic: created by this run? deleted afterwards --- */

bnode log_resp_node(const log_options *o, int i) {
    if (o->resp_count) return o->resp[i];
    bnode n = o->nodes[i];
    n.port -= 1000;
    snprintf(n.addr, sizeof n.addr, "%s:%d", n.host, n.port);
    return n;
}

/* Send one command to node i's RESP port; the reply (malloc'd) or NULL
 * after printing why. */
static char *topic_command(const log_options *o, int i, const char *cmd) {
    bnode n = log_resp_node(o, i);
    int fd = n.port >= 1 ? tcp_connect(n.host, n.port) : -1;
    char *reply = NULL;
    if (fd >= 0) {
        const char *argv[] = {cmd, o->topic};
        reply = resp_command(fd, 2, argv);
        close(fd);
    }
    if (!reply || reply[0] == '-')
        fprintf(stderr, "pier-bench: %s %s on the RESP port %s failed (%s): the topic is "
                "%s; give the RESP ports with --resp, or --keep\n", cmd, o->topic, n.addr,
                reply ? strtok(reply, "\r\n") : fd < 0 ? strerror(errno) : "no reply",
                cmd[0] == 'E' ? "kept" : "left behind");
    if (reply && reply[0] == '-') {
        free(reply);
        reply = NULL;
    }
    return reply;
}

static void topic_check(log_run *r) {
    const log_options *o = r->o;
    for (int i = 0; i < o->node_count && !o->keep; i++) {
        char *rep = topic_command(o, i, "EXISTS");
        r->created[i] = rep && !strncmp(rep, ":0", 2);
        free(rep);
    }
}

static void topic_cleanup(log_run *r) {
    const log_options *o = r->o;
    for (int i = 0; i < o->node_count; i++) {
        if (!r->created[i] || (r->kill.killed && r->kill.node == i)) continue;
        char *rep = topic_command(o, i, "DEL");
        r->deleted += rep != NULL;
        free(rep);
    }
}

/* --- message data --- */

static void fill_pool(uint8_t *p, enum log_pattern pat) {
    static const char *words[] = {"the ", "order ", "shipped ", "to ", "customer ", "id=",
                                  "4711 ", "at ", "warehouse ", "north\n", "status=ok ",
                                  "qty=12 "};
    uint64_t x = 0x2545F4914F6CDD1Dull;
    size_t off = 0;
    while (off < POOL_BYTES) {
        if (pat == PAT_ZEROS) {
            p[off++] = 0;
        } else if (pat == PAT_RANDOM) {
            uint64_t rnd = xorshift(&x);
            size_t n = POOL_BYTES - off < 8 ? POOL_BYTES - off : 8;
            memcpy(p + off, &rnd, n);
            off += n;
        } else {
            const char *w = words[xorshift(&x) % 12];
            size_t n = strlen(w) < POOL_BYTES - off ? strlen(w) : POOL_BYTES - off;
            memcpy(p + off, w, n);
            off += n;
        }
    }
}

/* Message i: a window of the pool at a varying offset, so consecutive
 * messages differ (random stays incompressible across a batch). */
static const uint8_t *message_at(const log_run *r, uint64_t i) {
    size_t span = POOL_BYTES - r->o->msg_size;
    return r->pool + (i * 4099 % span);
}

/* --- publishing --- */

static void pace(const log_run *r, uint64_t i, int threads) {
    if (r->o->rate <= 0) return;
    uint64_t due = r->t0 + (uint64_t)((double)i * (double)threads * 1e9 / r->o->rate);
    uint64_t now = now_ns();
    if (due > now) {
        struct timespec ts = {(time_t)((due - now) / 1000000000ull),
                              (long)((due - now) % 1000000000ull)};
        nanosleep(&ts, NULL);
    }
}

/* Copy message i into buf with its stamps: the send time (latency, bytes
 * 0..8) and the thread and index (--verify, bytes 8..20). */
static const uint8_t *stamp(const pub_thread *t, uint64_t i, uint8_t *buf) {
    const log_run *r = t->run;
    memcpy(buf, message_at(r, t->first + i), r->o->msg_size);
    if (r->o->mode == LOG_LATENCY) {
        pace(r, i, r->o->threads);
        uint64_t ts = now_ns();
        memcpy(buf, &ts, sizeof ts);
    }
    if (r->o->verify) {
        uint32_t thread = (uint32_t)t->index;
        uint64_t index = t->first + i;
        memcpy(buf + VERIFY_AT, &thread, sizeof thread);
        memcpy(buf + VERIFY_AT + 4, &index, sizeof index);
    }
    return buf;
}

static void *log_pub_main(void *arg) {
    pub_thread *t = arg;
    log_run *r = t->run;
    const log_options *o = r->o;
    pier_publisher *pub = r->pubs[t->index % r->npubs];
    uint8_t *stamped = o->mode == LOG_LATENCY || o->verify ? xmalloc(o->msg_size) : NULL;
    for (uint64_t i = 0; i < t->count && !atomic_load(&r->failed); i++) {
        const uint8_t *m = stamped ? stamp(t, i, stamped) : message_at(r, t->first + i);
        t->rc = pier_publish(pub, m, o->msg_size);
        if (t->rc) {
            fprintf(stderr, "pier-bench: publish: %s: %s\n", pier_strerror(t->rc),
                    pier_last_error());
            atomic_store(&r->failed, 1);
            break;
        }
        atomic_fetch_add_explicit(&r->published, 1, memory_order_relaxed);
    }
    free(stamped);
    return NULL;
}

/* --- subscribing (e2e, latency) --- */

static void record_latencies(log_run *r, const pier_batch *b, uint64_t now) {
    bool iv = r->o->c.interval_s > 0;
    if (iv) pthread_mutex_lock(&r->iv.lock);
    for (size_t i = 0; i < b->count; i++) {
        const pier_msg *m = &b->msgs[i];
        if (m->kind != PIER_KIND_DATA || m->len < 8) continue;
        uint64_t ts;
        memcpy(&ts, m->data, sizeof ts);
        if (ts < r->t0 || ts > now) continue;
        hist_record(&r->lat, now - ts);
        if (iv) hist_record(&r->iv.h, now - ts);
    }
    if (iv) pthread_mutex_unlock(&r->iv.lock);
}

static void *log_sub_main(void *arg) {
    log_run *r = arg;
    while (atomic_load(&r->consumed) < r->msgs_total && !atomic_load(&r->failed)) {
        pier_batch b;
        int rc = pier_subscriber_next(r->sub, &b);
        if (rc) {
            fprintf(stderr, "pier-bench: subscriber: %s: %s\n", pier_strerror(rc),
                    pier_last_error());
            atomic_store(&r->failed, 1);
            break;
        }
        uint64_t now = now_ns();
        if (r->o->mode == LOG_LATENCY) record_latencies(r, &b, now);
        atomic_fetch_add(&r->consumed, b.count);
        r->t_consumed_last = now;
    }
    return NULL;
}

/* --- setup --- */

static int open_log_publisher(const log_options *o, log_run *r, pier_publisher **pub) {
    pier_publisher_options po;
    pier_publisher_options_init(&po);
    po.topic = o->topic;
    po.nodes = o->node_addrs;
    po.node_count = o->node_count;
    po.conns_per_node = o->conns;
    po.batch_bytes = o->batch_bytes;
    po.linger_us = o->linger_us;
    po.ack_level = o->ack_level;
    po.order_level = o->order_level;
    po.replication = o->replication;
    po.on_ack = acks_on_ack;
    po.on_ack_ctx = &r->acks;
    po.codec = o->codec;
    po.compress_min_bytes = o->threshold;
    po.adaptive = o->adaptive;
    po.zerocopy_min_bytes = o->zerocopy;
    po.verbose = o->verbose;
    int rc = pier_publisher_open(pub, &po);
    if (rc)
        fprintf(stderr, "pier-bench: cannot open the publisher: %s: %s\n", pier_strerror(rc),
                pier_last_error());
    return rc;
}

/* Every publisher; 0, or 1 after printing why. */
static int open_log_publishers(const log_options *o, log_run *r) {
    for (int i = 0; i < o->publishers; i++) {
        if (open_log_publisher(o, r, &r->pubs[i])) return 1;
        r->npubs++;
    }
    r->cluster_nodes = pier_publisher_cluster_nodes(r->pubs[0]);
    if (o->verify && !r->cluster_nodes && o->node_count > 1) {
        fprintf(stderr, "pier-bench: --verify needs one node or the nodes of a cluster (these "
                "are single nodes, each storing its share)\n");
        return 1;
    }
    return 0;
}

static int open_log_subscriber(const log_options *o, log_run *r) {
    const bnode *n = &o->nodes[0];
    int rc = pier_subscriber_open(&r->sub, n->host, n->port, o->topic, "$", 3, NULL);
    if (!rc) rc = pier_subscriber_set_timeout(r->sub, 30000);
    if (rc)
        fprintf(stderr, "pier-bench: cannot subscribe: %s: %s\n", pier_strerror(rc),
                pier_last_error());
    return rc;
}

/* --- progress and output --- */

static void progress_bar(const log_run *r, uint64_t done) {
    double frac = r->msgs_total ? (double)done / (double)r->msgs_total : 1;
    double secs = (double)(now_ns() - r->t0) / 1e9;
    double mib = (double)done * (double)r->o->msg_size / 1048576.0;
    char bar[41];
    int fill = (int)(frac * 40);
    for (int i = 0; i < 40; i++) bar[i] = i < fill ? '#' : '-';
    bar[40] = 0;
    fprintf(stderr, "\r[%s] %5.1f%%  %8.1f MiB/s  %6.1f s", bar, frac * 100,
            secs > 0 ? mib / secs : 0, secs);
}

/* What the run counts: messages consumed with a subscriber, else published. */
static uint64_t done_count(const log_run *r) {
    return r->o->mode == LOG_PUBLISH ? atomic_load(&r->published) : atomic_load(&r->consumed);
}

static bool log_finished(void *arg, double elapsed) {
    log_run *r = arg;
    if (r->o->kill_at > 0) kill_maybe(r, elapsed);
    return done_count(r) >= r->msgs_total || atomic_load(&r->failed);
}

static void log_progress(void *arg, int second) { progress_bar(arg, done_count(arg)); }

/* The results (or an interval's): messages done in secs. */
static void fill_results(record *rec, const log_run *r, uint64_t msgs, double secs,
                         const histogram *lat) {
    double bytes = (double)msgs * (double)r->o->msg_size;
    rec_int(rec, "messages", (long long)msgs);
    rec_num(rec, "bytes", bytes, 0);
    rec_num(rec, "seconds", secs, 3);
    rec_num(rec, "mib_per_sec", secs > 0 ? bytes / secs / 1048576.0 : 0, 1);
    rec_num(rec, "gb_per_sec", secs > 0 ? bytes / secs / 1e9 : 0, 3);
    rec_num(rec, "msgs_per_sec", secs > 0 ? (double)msgs / secs : 0, 0);
    rec_latency(rec, "", lat);
    rec_int(rec, "failed", atomic_load(&r->failed));
    rec_int(rec, "cluster_nodes", r->cluster_nodes);
    if (r->o->kill_at > 0) kill_results(r, rec);
}

static void log_sample(void *arg, record *iv, double secs) {
    log_run *r = arg;
    uint64_t done = done_count(r);
    histogram h;
    hist_init(&h);
    uint64_t unused = 0;
    ival_take(&r->iv, &h, &unused);
    fill_results(iv, r, done - r->iv_last_done, secs, &h);
    r->iv_last_done = done;
}

static void fill_params(const log_options *o, record *p) {
    rec_str(p, "log_mode", mode_names[o->mode]);
    rec_str(p, "nodes", o->nodes_str);
    rec_int(p, "size", (long long)o->msg_size);
    rec_int(p, "requests", (long long)(o->total_bytes / o->msg_size));
    rec_int(p, "total_bytes", (long long)o->total_bytes);
    rec_int(p, "conns", o->conns);
    rec_int(p, "threads", o->threads);
    rec_int(p, "ack", o->ack_level);
    rec_int(p, "order_level", o->order_level);
    rec_int(p, "replication", o->replication);
    rec_int(p, "publishers", o->publishers);
    rec_num(p, "kill_leader_at", o->kill_at, 3);
    rec_bool(p, "verify", o->verify);
    rec_str(p, "codec", codec_names[o->codec]);
    rec_int(p, "threshold", (long long)o->threshold);
    rec_bool(p, "adaptive", o->adaptive);
    rec_str(p, "pattern", pattern_names[o->pattern]);
    rec_int(p, "batch", (long long)o->batch_bytes);
    rec_int(p, "linger_us", o->linger_us);
    rec_int(p, "zerocopy", (long long)o->zerocopy);
    rec_num(p, "rate", o->rate, 1);
    rec_str(p, "topic", o->topic);
    rec_bool(p, "keep", o->keep);
}

/* Statistics of every publisher: per node (summed over publishers) and
 * per connection. */
typedef struct log_stats {
    pier_conn_stats nodes[MAX_NODES];
    int nnodes;
    pier_conn_stats conns[256];
    int nconns;
} log_stats;

static void collect_stats(const log_run *r, log_stats *ls) {
    *ls = (log_stats){0};
    for (int p = 0; p < r->npubs; p++) {
        pier_conn_stats nodes[MAX_NODES];
        int n = 0, c = 0;
        pier_publisher_node_stats(r->pubs[p], nodes, MAX_NODES, &n);
        for (int i = 0; i < n && i < MAX_NODES; i++) {
            if (p == 0) ls->nodes[i] = nodes[i];
            else pier_conn_stats_add(&ls->nodes[i], &nodes[i]);
        }
        ls->nnodes = n < MAX_NODES ? n : MAX_NODES;
        int room = (int)(sizeof ls->conns / sizeof *ls->conns) - ls->nconns;
        pier_publisher_stats(r->pubs[p], ls->conns + ls->nconns, room, &c);
        ls->nconns += c < room ? c : room;
    }
}

static void print_node_table(const log_stats *ls, double secs) {
    printf("  %-22s %5s %8s %10s %9s %8s %8s %6s %7s %7s %5s\n", "node", "conns", "batches",
           "MiB", "MB/s", "send s", "comp s", "ratio", "resent", "dupack", "recon");
    for (int i = 0; i < ls->nnodes; i++) {
        const pier_conn_stats *st = &ls->nodes[i];
        char conns[16];
        snprintf(conns, sizeof conns, "%d", st->connected);
        printf("  %-22s %5s %8llu %10.1f %9.1f %8.3f %8.3f %6.3f %7llu %7llu %5llu\n", st->node,
               conns, (unsigned long long)st->batches, (double)st->wire_bytes / 1048576.0,
               secs > 0 ? (double)st->wire_bytes / secs / 1e6 : 0, st->send_ns / 1e9,
               st->compress_ns / 1e9, st->ratio, (unsigned long long)st->resent_batches,
               (unsigned long long)st->duplicate_acks, (unsigned long long)st->reconnects);
    }
}

static void print_stats_json(const char *name, const pier_conn_stats *st, int n, double secs) {
    printf(",\"%s\":[", name);
    for (int i = 0; i < n; i++)
        printf("%s{\"node\":\"%s\",\"connected\":%d,\"batches\":%llu,"
               "\"compressed_batches\":%llu,\"raw_bytes\":%llu,\"wire_bytes\":%llu,"
               "\"mb_per_sec\":%.1f,\"send_s\":%.4f,\"compress_s\":%.4f,\"ratio\":%.4f,"
               "\"acked_batches\":%llu,\"duplicate_acks\":%llu,\"skipped_batches\":%llu,"
               "\"resent_batches\":%llu,"
               "\"reconnects\":%llu,\"zerocopy_sends\":%llu,\"zerocopy_copied\":%llu}",
               i ? "," : "", st[i].node, st[i].connected, (unsigned long long)st[i].batches,
               (unsigned long long)st[i].compressed_batches,
               (unsigned long long)st[i].raw_bytes, (unsigned long long)st[i].wire_bytes,
               secs > 0 ? (double)st[i].wire_bytes / secs / 1e6 : 0, st[i].send_ns / 1e9,
               st[i].compress_ns / 1e9, st[i].ratio, (unsigned long long)st[i].acked_batches,
               (unsigned long long)st[i].duplicate_acks,
               (unsigned long long)st[i].skipped_batches,
               (unsigned long long)st[i].resent_batches, (unsigned long long)st[i].reconnects,
               (unsigned long long)st[i].zerocopy_sends,
               (unsigned long long)st[i].zerocopy_copied);
    printf("]");
}

static void write_cdf(const char *path, const histogram *h) {
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "pier-bench: cannot write %s\n", path);
        return;
    }
    fprintf(f, "percentile,latency_us\n");
    static const double tail[] = {99.5, 99.9, 99.95, 99.99, 99.999, 100};
    for (int p = 0; p < 99; p++) fprintf(f, "%d,%.2f\n", p, hist_percentile(h, p) / 1e3);
    for (size_t i = 0; i < sizeof tail / sizeof *tail; i++)
        fprintf(f, "%g,%.2f\n", tail[i], hist_percentile(h, tail[i]) / 1e3);
    fclose(f);
}

static void print_summary(report *rp, const log_run *r, double secs, const log_stats *ls) {
    const log_options *o = r->o;
    record total = {0};
    fill_results(&total, r, r->msgs_total, secs, &r->lat);
    if (o->c.json) {
        report_json_begin(rp, &total);
        print_stats_json("nodes", ls->nodes, ls->nnodes, secs);
        print_stats_json("connections", ls->conns, ls->nconns, secs);
        if (o->verify) verify_json(r);
        report_json_end(rp);
        return;
    }
    if (o->c.csv) {
        report_csv_total(rp, secs, &total);
        return;
    }
    printf("log %s: %llu messages of %zu bytes in %.2f s\n", mode_names[o->mode],
           (unsigned long long)r->msgs_total, o->msg_size, secs);
    printf("  throughput  %.1f MiB/s  (%.3f GB/s)  %.0f msgs/s\n",
           rec_get(&total, "mib_per_sec")->d, rec_get(&total, "gb_per_sec")->d,
           rec_get(&total, "msgs_per_sec")->d);
    const histogram *h = &r->lat;
    if (o->mode == LOG_LATENCY)
        printf("  latency us  p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  (%llu samples)\n",
               hist_percentile(h, 50) / 1e3, hist_percentile(h, 90) / 1e3,
               hist_percentile(h, 99) / 1e3, hist_percentile(h, 99.9) / 1e3, h->max / 1e3,
               (unsigned long long)h->count);
    if (r->cluster_nodes)
        printf("  cluster of %d nodes: %d striped publisher(s), order level %d, ack level %d, "
               "replication %d%s\n", r->cluster_nodes, r->npubs, o->order_level, o->ack_level,
               o->replication, o->replication ? "" : " (the topic's)");
    print_node_table(ls, secs);
    if (o->kill_at > 0) kill_print(r);
    if (o->verify) verify_print(r);
    if (r->deleted)
        printf("  topic %s deleted afterwards (--keep keeps it)\n", o->topic);
}

/* --- run --- */

static void start_publishers(log_run *r, pub_thread *ts) {
    int n = r->o->threads;
    for (int i = 0; i < n; i++) {
        uint64_t share = r->msgs_total / (uint64_t)n;
        ts[i] = (pub_thread){.run = r, .index = i, .first = share * (uint64_t)i,
                             .count = share + (i == n - 1 ? r->msgs_total % (uint64_t)n : 0)};
        pthread_create(&ts[i].tid, NULL, log_pub_main, &ts[i]);
    }
}

/* Publish (and consume); returns the measured seconds. */
static double publish_all(report *rp, log_run *r) {
    const log_options *o = r->o;
    bool with_sub = o->mode != LOG_PUBLISH;
    pthread_t sub_tid;
    pub_thread *ts = calloc((size_t)o->threads, sizeof *ts);
    if (!ts) fail("out of memory");
    r->t0 = now_ns();
    if (with_sub) pthread_create(&sub_tid, NULL, log_sub_main, r);
    start_publishers(r, ts);
    run_hooks hooks = {log_finished, log_progress, log_sample, r};
    report_wait(rp, r->t0, &hooks);
    for (int i = 0; i < o->threads; i++) pthread_join(ts[i].tid, NULL);
    for (int i = 0; i < r->npubs; i++) {
        int rc = pier_flush(r->pubs[i]); /* every batch acknowledged */
        if (rc) {
            fprintf(stderr, "pier-bench: flush: %s: %s\n", pier_strerror(rc), pier_last_error());
            atomic_store(&r->failed, 1);
        }
    }
    uint64_t t_end = now_ns();
    r->t_end = t_end;
    atomic_store(&r->publishing_done, 1);
    if (with_sub) {
        pthread_join(sub_tid, NULL);
        t_end = r->t_consumed_last;
    }
    if (!o->c.quiet && !o->c.json && !o->c.csv && o->c.interval_s <= 0) {
        progress_bar(r, done_count(r));
        fputc('\n', stderr);
    }
    free(ts);
    return (double)(t_end - r->t0) / 1e9;
}

int run_log(int argc, char **argv) {
    log_options o;
    log_parse(argc, argv, &o);
    log_run r = {.o = &o, .msgs_total = o.total_bytes / o.msg_size, .kill.node = -1};
    hist_init(&r.lat);
    acks_init(&r.acks);
    ival_init(&r.iv);
    report rp;
    report_init(&rp, &o.c);
    fill_params(&o, &rp.params);
    record proto = {0};
    fill_results(&proto, &r, 0, 0, &r.lat);
    r.pool = xmalloc(POOL_BYTES);
    fill_pool(r.pool, o.pattern);
    topic_check(&r);
    if (o.kill_at > 0) kill_check(&r);
    if (open_log_publishers(&o, &r) || (o.mode != LOG_PUBLISH && open_log_subscriber(&o, &r)) ||
        (o.verify && verify_start(&r))) {
        for (int i = 0; i < r.npubs; i++) pier_publisher_close(r.pubs[i]);
        pier_subscriber_close(r.sub);
        verify_free(&r);
        topic_cleanup(&r);
        return 1;
    }
    report_begin(&rp, &proto);
    double secs = publish_all(&rp, &r);
    if (o.verify && !verify_finish(&r)) atomic_store(&r.failed, 1);
    log_stats ls;
    collect_stats(&r, &ls);
    for (int i = 0; i < r.npubs; i++)
        if (pier_publisher_close(r.pubs[i])) atomic_store(&r.failed, 1);
    pier_subscriber_close(r.sub);
    topic_cleanup(&r);
    print_summary(&rp, &r, secs, &ls);
    verify_free(&r);
    if (o.cdf_path && o.mode == LOG_LATENCY) write_cdf(o.cdf_path, &r.lat);
    report_free(&rp);
    ival_destroy(&r.iv);
    free(r.pool);
    return atomic_load(&r.failed) ? 1 : 0;
}
