/* fuzz_config.c - the config file parser and CONFIG SET.
 *
 * 1. config_load_text on the input (a redis.conf-style text) with a fresh
 *    pier_config from config_defaults. Whatever it accepted, every option's
 *    current value (config_get) must be accepted back by config_set and
 *    read back identically, a config file written from those values
 *    (quoted) must load into an identical config, and so must the restart
 *    hand-over (config_dump / config_restore, rename-command lines too).
 *    When the input loads, CONFIG REWRITE's text over it (the input as the
 *    old file) must load too, into the same values.
 * 2. config_set with a name/value split of the input: byte 0 picks an
 *    option from the table (or, past the table, the name is the input up to
 *    the first space) and the runtime flag; the rest is the value. The same
 *    round trips must hold afterwards. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

#define VALUE_MAX 2048

static void get_value(const pier_config *cfg, const char *name, char *buf) {
    int n = config_get(cfg, name, buf, VALUE_MAX);
    FZ_CHECK(n >= 0 && n < VALUE_MAX);
    FZ_CHECK(strlen(buf) == (size_t)n);
}

/* Every current value is valid input for config_set and reads back as is. */
static void check_set_get_roundtrip(pier_config *cfg) {
    const char *name;
    for (size_t i = 0; (name = config_name_at(i)) != NULL; i++) {
        char v1[VALUE_MAX], v2[VALUE_MAX], err[256];
        get_value(cfg, name, v1);
        if (config_set(cfg, name, v1, 0, err, sizeof(err)) != 0) {
            fprintf(stderr, "fuzz: option %s: its own value '%s' is refused: %s\n",
                    name, v1, err);
            abort();
        }
        get_value(cfg, name, v2);
        if (strcmp(v1, v2) != 0) {
            fprintf(stderr, "fuzz: option %s: '%s' read back as '%s'\n", name, v1, v2);
            abort();
        }
    }
}

/* Write cfg as a config file ("name \"value\"" lines, \\ and \" escaped)
 * and load it into a fresh config: all values must be identical. Values
 * with a line break cannot be written to a file and are skipped. */
static void check_file_roundtrip(const pier_config *cfg) {
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap);
    FZ_CHECK(text != NULL);
    const char *name;
    for (size_t i = 0; (name = config_name_at(i)) != NULL; i++) {
        char v[VALUE_MAX];
        get_value(cfg, name, v);
        if (strpbrk(v, "\r\n") != NULL) {
            free(text);
            return;
        }
        len += (size_t)snprintf(text + len, cap - len, "%s \"", name);
        for (const char *p = v; *p; p++) {
            if (*p == '"' || *p == '\\')
                text[len++] = '\\';
            text[len++] = *p;
        }
        len += (size_t)snprintf(text + len, cap - len, "\"\n");
        FZ_CHECK(len < cap / 2);
    }
    pier_config copy;
    config_defaults(&copy);
    char err[512];
    if (config_load_text(&copy, text, len, "dump", err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz: a dump of a valid config does not load: %s\n%s", err, text);
        abort();
    }
    for (size_t i = 0; (name = config_name_at(i)) != NULL; i++) {
        char a[VALUE_MAX], b[VALUE_MAX];
        get_value(cfg, name, a);
        get_value(&copy, name, b);
        if (strcmp(a, b) != 0) {
            fprintf(stderr, "fuzz: option %s: '%s' reloaded as '%s'\n", name, a, b);
            abort();
        }
    }
    config_free(&copy);
    free(text);
}

/* CONFIG REWRITE over the file cfg was loaded from: the new text loads,
 * into the same values (a value with a line break cannot be written: the
 * rewrite refuses it). */
static void check_rewrite(const pier_config *cfg, const char *old, size_t len) {
    char *text, err[512];
    size_t tlen;
    if (config_rewrite_text(cfg, old, len, &text, &tlen, err, sizeof(err)) != 0) {
        FZ_CHECK(strstr(err, "line break") != NULL);
        return;
    }
    pier_config copy;
    config_defaults(&copy);
    if (config_load_text(&copy, text, tlen, "rewritten", err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz: the rewritten config does not load: %s\n%.*s", err, (int)tlen,
                text);
        abort();
    }
    const char *name;
    for (size_t i = 0; (name = config_name_at(i)) != NULL; i++) {
        char a[VALUE_MAX], b[VALUE_MAX];
        FZ_CHECK(config_get_configured(cfg, name, a, sizeof(a)) >= 0);
        FZ_CHECK(config_get_configured(&copy, name, b, sizeof(b)) >= 0);
        if (strcmp(a, b) != 0) {
            fprintf(stderr, "fuzz: rewrite: option %s: '%s' reloaded as '%s'\n%.*s", name, a, b,
                    (int)tlen, text);
            abort();
        }
    }
    FZ_CHECK(copy.nrenames == cfg->nrenames);
    config_free(&copy);
    free(text);
}

/* The restart hand-over: a config_dump restored into a fresh config gives
 * every option (secrets and rename-command lines included) back; a dump
 * cut short is refused, never half-applied silently. */
static void check_dump_roundtrip(const pier_config *cfg) {
    size_t len;
    char *dump = config_dump(cfg, &len);
    pier_config copy;
    config_defaults(&copy);
    char err[256];
    if (config_restore(&copy, dump, len, err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz: a dump does not restore: %s\n", err);
        abort();
    }
    const char *name;
    for (size_t i = 0; (name = config_name_at(i)) != NULL; i++) {
        char a[VALUE_MAX], b[VALUE_MAX];
        get_value(cfg, name, a);
        get_value(&copy, name, b);
        if (strcmp(a, b) != 0) {
            fprintf(stderr, "fuzz: option %s: '%s' restored as '%s'\n", name, a, b);
            abort();
        }
    }
    FZ_CHECK(copy.nrenames == cfg->nrenames);
    for (int i = 0; i < cfg->nrenames; i++)
        FZ_CHECK(!strcmp(copy.renames[i].from, cfg->renames[i].from) &&
                 !strcmp(copy.renames[i].to, cfg->renames[i].to));
    config_free(&copy);
    if (len > 0) {
        config_defaults(&copy);
        FZ_CHECK(config_restore(&copy, dump, len - 1, err, sizeof(err)) != 0);
        config_free(&copy);
    }
    free(dump);
}

static void check_err(const char *err, size_t errlen) {
    FZ_CHECK(memchr(err, '\0', errlen) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* 1. the whole input as a config file */
    pier_config cfg;
    config_defaults(&cfg);
    char err[512];
    memset(err, 'x', sizeof(err));
    err[sizeof(err) - 1] = '\0';
    if (config_load_text(&cfg, (const char *)data, size, "fuzz.conf", err, sizeof(err)) != 0) {
        check_err(err, sizeof(err));
        FZ_CHECK(strncmp(err, "fuzz.conf:", 10) == 0);
    } else {
        check_rewrite(&cfg, (const char *)data, size);
    }
    check_set_get_roundtrip(&cfg);
    check_file_roundtrip(&cfg);
    check_dump_roundtrip(&cfg);
    config_free(&cfg);

    /* 2. one CONFIG SET */
    if (size == 0)
        return 0;
    size_t noptions = 0;
    while (config_name_at(noptions) != NULL)
        noptions++;
    int runtime = data[0] & 1;
    size_t pick = data[0] >> 1;
    char *rest = malloc(size); /* data[1..] NUL-terminated */
    FZ_CHECK(rest != NULL);
    memcpy(rest, data + 1, size - 1);
    rest[size - 1] = '\0';
    const char *name, *value;
    if (pick < noptions) {
        name = config_name_at(pick);
        value = rest;
    } else {
        char *sp = strchr(rest, ' ');
        name = rest;
        value = "";
        if (sp) {
            *sp = '\0';
            value = sp + 1;
        }
    }
    config_defaults(&cfg);
    char before[VALUE_MAX] = "";
    int known = config_get(&cfg, name, before, sizeof(before)) >= 0;
    memset(err, 'x', sizeof(err));
    err[sizeof(err) - 1] = '\0';
    int rc = config_set(&cfg, name, value, runtime, err, sizeof(err));
    if (rc != 0) {
        FZ_CHECK(rc == -1);
        check_err(err, sizeof(err));
        if (known) { /* a refused value leaves the option unchanged */
            char after[VALUE_MAX];
            get_value(&cfg, name, after);
            FZ_CHECK(strcmp(before, after) == 0);
        }
    } else if (runtime) {
        FZ_CHECK(known); /* file-only options are refused at run time */
    }
    check_set_get_roundtrip(&cfg);
    check_file_roundtrip(&cfg);
    check_dump_roundtrip(&cfg);
    config_free(&cfg);
    free(rest);
    return 0;
}
