/* fuzz_aof.c - AOF replay (aof_load in src/persist/aof.c).
 *
 * The input is written as the only (hence last) incr file of a manifest in
 * a scratch directory (/dev/shm when available) and loaded with aof_load;
 * the replayed commands are recorded. Checks:
 *  - every replayed command has at least one argument, and its bytes are
 *    readable (copied);
 *  - a tail cut (a truncated last command) only ever shortens the file;
 *  - when the load succeeds, resp_parse - the client-side parser - reads
 *    the (possibly cut) file as exactly the same commands with nothing
 *    left over: a successful replay means strict RESP, which both must
 *    agree on. (Headers with a leading zero such as "$03" are skipped: the
 *    AOF reader accepts them like Redis's loader, the request parser
 *    rejects them like Redis's.)
 *  - aof_check_image (pier-check-aof) on the same bytes agrees with the
 *    load: OK = loaded whole, TORN = loaded and cut exactly at its
 *    ok_upto, BAD = refused. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "persist/aof.h"
#include "persist/manifest.h"
#include "resp_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INCR_NAME "appendonly.aof.1.incr.aof"

static char scratch[256];
static aof the_aof;
static keyspace *ks;
static char incr_path[AOF_PATH_MAX + 64];

static void cleanup(void) {
    char path[AOF_PATH_MAX + 300];
    unlink(incr_path);
    snprintf(path, sizeof(path), "%s/%s", the_aof.dir, the_aof.manifest_name);
    unlink(path);
    rmdir(the_aof.dir);
    rmdir(scratch);
}

static void setup(void) {
    log_set_level(LOG_SILENT);
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(scratch, sizeof(scratch), "%s/pier-fuzz-aof-XXXXXX", base);
    FZ_CHECK(mkdtemp(scratch) != NULL);
    char err[256];
    FZ_CHECK(aof_init(&the_aof, scratch, "aofdir", "appendonly.aof", err, sizeof(err)) == 0);
    manifest m;
    memset(&m, 0, sizeof(m));
    FZ_CHECK(manifest_add(&m, INCR_NAME, 1, 'i') == 0);
    FZ_CHECK(manifest_store(&m, the_aof.dir, the_aof.manifest_name) == 0);
    snprintf(incr_path, sizeof(incr_path), "%s/%s", the_aof.dir, INCR_NAME);
    ks = ks_create(1);
    atexit(cleanup);
}

static int record(void *arg, int argc, const cmd_arg *argv) {
    transcript *t = arg;
    FZ_CHECK(argc >= 1);
    tr_begin_cmd(t, (size_t)argc);
    for (int i = 0; i < argc; i++)
        tr_put_arg(t, argv[i].p, argv[i].n);
    tr_end_cmd(t);
    return 0;
}

static int has_leading_zero_header(const uint8_t *d, size_t n) {
    for (size_t i = 0; i + 2 < n; i++)
        if ((d[i] == '*' || d[i] == '$') && d[i + 1] == '0' && d[i + 2] >= '0' &&
            d[i + 2] <= '9')
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!scratch[0])
        setup();
    int fd = open(incr_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    FZ_CHECK(fd >= 0);
    FZ_CHECK(size == 0 || write(fd, data, size) == (ssize_t)size);
    close(fd);

    aof_check_result check;
    aof_check_image(data, size, NULL, NULL, &check);
    transcript replayed;
    tr_init(&replayed);
    char err[512] = "";
    int rc = aof_load(&the_aof, ks, 0, record, &replayed, err, sizeof(err));
    FZ_CHECK(rc == 1 || rc == -1);
    FZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
    struct stat st;
    FZ_CHECK(stat(incr_path, &st) == 0);
    size_t kept = (size_t)st.st_size;
    FZ_CHECK(kept <= size); /* a cut only shortens */
    FZ_CHECK(check.ok_upto <= size);
    if (check.status == AOF_CHECK_OK) FZ_CHECK(rc == 1 && kept == size && check.ok_upto == size);
    else if (check.status == AOF_CHECK_TORN) FZ_CHECK(rc == 1 && kept == check.ok_upto);
    else FZ_CHECK(check.status == AOF_CHECK_BAD && rc == -1);
    if (rc == -1) {
        FZ_CHECK(err[0] != '\0');
    } else if (!has_leading_zero_header(data, kept)) {
        tr_finish(&replayed, RESP_NEED_MORE, NULL);
        transcript parsed;
        tr_init(&parsed);
        feed_whole(data, kept, FZ_DEFAULT_LIMITS, &parsed);
        tr_compare("AOF replay vs resp_parse", &parsed, &replayed, 0);
        tr_free(&parsed);
    }
    tr_free(&replayed);
    return 0;
}
