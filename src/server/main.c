/* main.c - pier-server entry point: parse configuration, run, exit. */
#include <stdio.h>
#include <stdlib.h>

#include "../lib/log.h"
#include "server.h"

int main(int argc, char **argv) {
    /* The server struct is large (config strings); keep it off the stack. */
    server *srv = calloc(1, sizeof *srv);
    if (!srv) return 1;
    config_defaults(&srv->cfg);
    srv->cfg.argv = argv; /* a cluster node may restart itself with it */
    int rc = config_from_args(&srv->cfg, argc, argv);
    if (rc) {
        config_free(&srv->cfg);
        free(srv);
        return rc == 1 ? 0 : rc;
    }
    log_set_level(CFG_GET(srv->cfg.loglevel));
    if (srv->cfg.logfile[0] && !freopen(srv->cfg.logfile, "a", stderr)) {
        fprintf(stdout, "pier-server: cannot open logfile '%s'\n", srv->cfg.logfile);
        config_free(&srv->cfg);
        free(srv);
        return 2;
    }
    if (server_init(srv) < 0) {
        server_free(srv);
        free(srv);
        return 1;
    }
    rc = server_run(srv);
    server_free(srv);
    free(srv);
    return rc;
}
