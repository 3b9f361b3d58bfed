/* pier-check-aof - check pier's append-only file (and snapshots), and cut
 * a damaged tail off the AOF's last file, as redis-check-aof does for
 * Redis.
 *
 *   pier-check-aof [--fix [--yes]] <appendonly.aof.manifest | file.incr.aof |
 *                                   file.base.pier | dump.pier>
 *
 * A manifest is checked line by line (format, checksum), then every file
 * it lists in replay order: the base (a PIERSNAP snapshot) is decoded the
 * way start-up loads it, each incremental file is walked by the replay's
 * own parser (aof_check_image in src/persist/aof.c) and every command
 * name is looked up in the server's command table. The first problem is
 * reported with the file, its offset and the bytes found there.
 *
 * --fix truncates the LAST incremental file at the end of its last whole
 * command (what start-up itself does for an incomplete last command),
 * after asking (--yes: without asking). A problem anywhere else (the
 * base, an earlier incremental file, the manifest) is not fixable by
 * cutting: later files were written after it, so the tool refuses.
 *
 * Exit status: 0 valid (or fixed), 1 not valid, 2 usage or I/O error.
 * Run it on a stopped server: it reads the files the server writes. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "cmd/command.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "persist/aof.h"
#include "persist/fileio.h"
#include "persist/manifest.h"
#include "persist/snapshot.h"
#include "store/keyspace.h"
#include "types/types.h"

enum { CHECK_VALID = 0, CHECK_INVALID = 1, CHECK_ERROR = 2 };

typedef struct opts {
    int fix, yes;
} opts;

static void usage(FILE *to) {
    fprintf(to,
            "Usage: pier-check-aof [--fix [--yes]] <file.manifest | file.incr.aof | "
            "file.base.pier | dump.pier>\n"
            "\n"
            "Checks pier's append-only file: the manifest, then every file it lists\n"
            "(the base snapshot, each incremental file), and reports the first problem\n"
            "with its file, offset and the bytes there. Also checks a single AOF file or\n"
            "a snapshot (dump.pier).\n"
            "\n"
            "  --fix   truncate the last incremental file at the end of its last whole\n"
            "          command (asks first; back the directory up before)\n"
            "  --yes   do not ask\n"
            "\n"
            "Exit status: 0 valid (or fixed), 1 not valid, 2 usage or I/O error.\n"
            "Stop pier-server first. See docs/PERSISTENCE.md.\n");
}

/* Up to 40 bytes at p, escaped so a terminal shows them as they are. */
static void show_bytes(const unsigned char *p, size_t n) {
    printf("    there: \"");
    for (size_t i = 0; i < n && i < 40; i++) {
        if (p[i] == '\r') printf("\\r");
        else if (p[i] == '\n') printf("\\n");
        else if (p[i] == '"' || p[i] == '\\') printf("\\%c", p[i]);
        else if (isprint(p[i])) putchar(p[i]);
        else printf("\\x%02x", p[i]);
    }
    printf("\"%s\n", n > 40 ? "..." : "");
}

/* aof_check_image's callback: the command table's names, and the cluster
 * log's records. Keeps the name of a refused command for the report. */
typedef struct name_check {
    char unknown[65];
} name_check;

static int known_command(void *arg, int argc, const cmd_arg *argv) {
    name_check *nc = arg;
    if (cmd_lookup_row(argv[0].p, argv[0].n) || cluster_is_log_record(argv[0].p, argv[0].n))
        return 0;
    snprintf(nc->unknown, sizeof nc->unknown, "%.*s", (int)(argv[0].n > 64 ? 64 : argv[0].n),
             argv[0].p);
    return -1;
}

/* Ask (unless --yes) and cut path at size `to`. */
static int fix_tail(const char *name, const char *path, size_t size, size_t to,
                    const opts *o) {
    printf("This will shrink the AOF %s from %zu bytes, with %zu bytes, to %zu bytes\n", name,
           size, size - to, to);
    if (!o->yes) {
        printf("Continue? [y/N]: ");
        fflush(stdout);
        char answer[16];
        if (!fgets(answer, sizeof answer, stdin) || tolower((unsigned char)answer[0]) != 'y') {
            printf("Aborting...\n");
            return CHECK_INVALID;
        }
    }
    if (truncate(path, (off_t)to) < 0) {
        printf("Failed to truncate the AOF %s: %s\n", name, strerror(errno));
        return CHECK_ERROR;
    }
    printf("Successfully truncated AOF %s\n", name);
    return CHECK_VALID;
}

static const char *problem_text(const aof_check_result *r, const name_check *nc, char *buf,
                                size_t len) {
    if (r->status == AOF_CHECK_TORN) return "incomplete last command (a crash during a write)";
    if (r->status == AOF_CHECK_BAD) return "bad RESP format";
    snprintf(buf, len, "unknown command '%s'", nc->unknown);
    return buf;
}

/* One incremental file. last: the manifest's last file (or a file given
 * alone), the only one --fix may cut. */
static int check_incr(const char *path, const char *name, int last, const opts *o) {
    const unsigned char *b;
    size_t len;
    if (pio_map_file(path, &b, &len) < 0) {
        printf("incr %s: cannot read: %s\n", name, strerror(errno));
        return errno == ENOENT ? CHECK_INVALID : CHECK_ERROR;
    }
    name_check nc = {""};
    aof_check_result r;
    aof_check_image(b, len, known_command, &nc, &r);
    if (r.status == AOF_CHECK_OK) {
        printf("incr %s: ok, %llu commands (%zu bytes)\n", name, (unsigned long long)r.commands,
               len);
        pio_unmap(b, len);
        return CHECK_VALID;
    }
    char why[128];
    printf("incr %s: %s at offset %zu of %zu bytes (%llu commands before it are fine)\n", name,
           problem_text(&r, &nc, why, sizeof why), r.ok_upto, len,
           (unsigned long long)r.commands);
    show_bytes(b + r.ok_upto, len - r.ok_upto);
    pio_unmap(b, len);
    if (r.status == AOF_CHECK_TORN && last)
        printf("    (pier-server cuts an incomplete last command off by itself at start-up)\n");
    if (!o->fix) {
        printf("AOF %s is not valid. Use the --fix option to try fixing it.\n", name);
        return CHECK_INVALID;
    }
    if (!last) {
        printf("Cannot fix %s: it is not the last file of the manifest (the files after it "
               "were written later); restore it from a backup\n", name);
        return CHECK_INVALID;
    }
    return fix_tail(name, path, len, r.ok_upto, o);
}

/* A snapshot (the AOF's base, or dump.pier), loaded as start-up loads it
 * into a scratch keyspace. */
static int check_snapshot(const char *path, const char *what, const char *name) {
    keyspace *ks = ks_create(1);
    types_register(ks);
    snap_result res;
    int rc = snap_load_file(ks, path, clock_wall_ms(), &res);
    ks_destroy(ks);
    if (rc > 0) {
        printf("%s %s: ok, %llu keys\n", what, name, (unsigned long long)res.records);
        return CHECK_VALID;
    }
    if (rc == 0) {
        printf("%s %s: missing\n", what, name);
        return CHECK_INVALID;
    }
    printf("%s %s: %s at offset %llu\n", what, name, res.err,
           (unsigned long long)res.err_offset);
    const unsigned char *b;
    size_t len;
    if (pio_map_file(path, &b, &len) == 0) {
        if (res.err_offset < len) show_bytes(b + res.err_offset, len - res.err_offset);
        pio_unmap(b, len);
    }
    printf("%s %s is not valid and cannot be fixed by this tool: restore it from a backup\n",
           what, name);
    return CHECK_INVALID;
}

static int check_manifest(const char *path, const opts *o) {
    char dir[4096], err[512];
    pio_dirname(dir, sizeof dir, path);
    const char *mname = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    manifest m;
    int rc = manifest_load(&m, dir, mname, err, sizeof err);
    if (rc <= 0) {
        printf("manifest %s: %s\n", path, rc == 0 ? "missing" : err);
        return rc == 0 ? CHECK_ERROR : CHECK_INVALID;
    }
    printf("manifest %s: ok, %d files\n", path, m.n);
    int worst = CHECK_VALID;
    for (int i = 0; i < m.n; i++) {
        char fpath[4400];
        if (pio_join(fpath, sizeof fpath, dir, m.files[i].name) < 0) return CHECK_ERROR;
        int r = m.files[i].type == 'b'
                    ? check_snapshot(fpath, "base", m.files[i].name)
                    : check_incr(fpath, m.files[i].name, i == m.n - 1, o);
        if (r > worst) worst = r;
        if (r != CHECK_VALID) break; /* later files replay on top of this one */
    }
    return worst;
}

static int is_snapshot_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char magic[8];
    int yes = fread(magic, 1, 8, f) == 8 && !memcmp(magic, SNAP_MAGIC, 8);
    fclose(f);
    return yes;
}

int main(int argc, char **argv) {
    opts o = {0, 0};
    const char *file = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--fix")) o.fix = 1;
        else if (!strcmp(argv[i], "--yes")) o.yes = 1;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-' || file) {
            usage(stderr);
            return CHECK_ERROR;
        } else file = argv[i];
    }
    if (!file) {
        usage(stderr);
        return CHECK_ERROR;
    }
    log_set_level(LOG_SILENT);
    cmd_table_init();
    if (!pio_exists(file)) {
        printf("Cannot open %s: %s\n", file, strerror(ENOENT));
        return CHECK_ERROR;
    }
    size_t n = strlen(file);
    int rc;
    if (n > 9 && !strcmp(file + n - 9, ".manifest")) {
        rc = check_manifest(file, &o);
    } else if (is_snapshot_file(file)) {
        rc = check_snapshot(file, "snapshot", file);
    } else {
        rc = check_incr(file, file, 1, &o);
    }
    if (rc == CHECK_VALID) printf("%s is valid\n", file);
    else printf("%s is not valid\n", file);
    return rc;
}
