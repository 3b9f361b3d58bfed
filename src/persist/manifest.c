/* manifest.c - parse, format and atomically replace the AOF manifest. */
#include "manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/crc32c.h"
#include "../lib/mem.h"
#include "fileio.h"

#define HEADER_WORD "pier-aof-manifest"

int manifest_add(manifest *m, const char *name, uint64_t seq, char type) {
    if (m->n >= MANIFEST_MAX_FILES || strlen(name) >= MANIFEST_NAME_MAX) return -1;
    manifest_file *f = &m->files[m->n++];
    snprintf(f->name, sizeof f->name, "%s", name);
    f->seq = seq;
    f->type = type;
    return 0;
}

uint64_t manifest_max_seq(const manifest *m, char type) {
    uint64_t max = 0;
    for (int i = 0; i < m->n; i++)
        if (m->files[i].type == type && m->files[i].seq > max) max = m->files[i].seq;
    return max;
}

int manifest_format(const manifest *m, char *buf, size_t cap) {
    size_t len = 0;
    int n = snprintf(buf, cap, "%s %d\n", HEADER_WORD, MANIFEST_VERSION);
    if (n < 0 || (size_t)n >= cap) return -1;
    len = (size_t)n;
    for (int i = 0; i < m->n; i++) {
        const manifest_file *f = &m->files[i];
        n = snprintf(buf + len, cap - len, "file %s seq %" PRIu64 " type %c\n", f->name, f->seq,
                     f->type);
        if (n < 0 || (size_t)n >= cap - len) return -1;
        len += (size_t)n;
    }
    n = snprintf(buf + len, cap - len, "crc %08x\n", crc32c(0, buf, len));
    if (n < 0 || (size_t)n >= cap - len) return -1;
    return (int)(len + (size_t)n);
}

/* One "file <name> seq <n> type <b|i>" line (NUL-terminated copy). */
static int parse_file_line(manifest *m, char *line) {
    char name[MANIFEST_NAME_MAX], type[4];
    unsigned long long seq;
    int used = 0;
    if (sscanf(line, "file %255s seq %llu type %3s%n", name, &seq, type, &used) != 3) return -1;
    if (line[used] != 0 || (strcmp(type, "b") && strcmp(type, "i"))) return -1;
    if (strchr(name, '/')) return -1; /* files live in the manifest's directory */
    if (type[0] == 'b' && m->n != 0) return -1; /* the base comes first, once */
    return manifest_add(m, name, seq, type[0]);
}

int manifest_parse(manifest *m, const char *text, size_t len, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    char line[1024];
    size_t pos = 0;
    int lineno = 0, have_crc = 0;
    while (pos < len && !have_crc) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - (text + pos)) : len - pos;
        lineno++;
        if (!nl || ll >= sizeof line) {
            snprintf(err, errlen, "line %d: unterminated or too long", lineno);
            return -1;
        }
        memcpy(line, text + pos, ll);
        line[ll] = 0;
        int version;
        unsigned crc;
        if (lineno == 1) {
            if (sscanf(line, HEADER_WORD " %d", &version) != 1 || version != MANIFEST_VERSION) {
                snprintf(err, errlen, "line 1: not a version %d pier manifest", MANIFEST_VERSION);
                return -1;
            }
        } else if (sscanf(line, "crc %8x", &crc) == 1) {
            if (crc != crc32c(0, text, pos)) {
                snprintf(err, errlen, "line %d: checksum mismatch", lineno);
                return -1;
            }
            have_crc = 1;
        } else if (parse_file_line(m, line) < 0) {
            snprintf(err, errlen, "line %d: bad file entry '%s'", lineno, line);
            return -1;
        }
        pos += ll + 1;
    }
    if (!have_crc || pos != len) {
        snprintf(err, errlen, "missing checksum line or data after it");
        return -1;
    }
    return 0;
}

int manifest_load(manifest *m, const char *dir, const char *name, char *err, size_t errlen) {
    char path[4096];
    if (pio_join(path, sizeof path, dir, name) < 0) {
        snprintf(err, errlen, "path too long");
        return -1;
    }
    const unsigned char *data;
    size_t len;
    if (pio_map_file(path, &data, &len) < 0) {
        if (errno == ENOENT) return 0;
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    char why[256];
    int rc = manifest_parse(m, (const char *)data, len, why, sizeof why);
    pio_unmap(data, len);
    if (rc < 0) {
        snprintf(err, errlen, "bad manifest %s: %s", path, why);
        return -1;
    }
    return 1;
}

int manifest_store(const manifest *m, const char *dir, const char *name) {
    size_t cap = (size_t)(m->n + 2) * (MANIFEST_NAME_MAX + 64);
    char *buf = xmalloc(cap);
    int len = manifest_format(m, buf, cap);
    char path[4096], tmp[4200];
    if (len < 0 || pio_join(path, sizeof path, dir, name) < 0) {
        free(buf);
        errno = ENAMETOOLONG;
        return -1;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = -1;
    if (fd >= 0) {
        if (pio_write_all(fd, buf, (size_t)len) == 0) {
            rc = pio_commit_file(fd, tmp, path);
        } else {
            close(fd);
        }
        if (rc < 0) {
            int saved = errno;
            unlink(tmp);
            errno = saved;
        }
    }
    free(buf);
    return rc;
}
