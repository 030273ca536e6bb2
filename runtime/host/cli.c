/*
 * cli.c - the moonlet command line: argv and the MOONLET_* environment
 * into a moonlet_config, then run, routes or version.  It uses the public
 * API, as any host would, server.c's blocking close, new.c for `moonlet
 * new`, and forwarded.h to check an address list.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include "base/log.h"
#include "host/new.h"
#include "host/server.h"
#include "net/forwarded.h"

enum { CMD_RUN, CMD_ROUTES, CMD_VERSION, CMD_HELP, CMD_NEW };

typedef struct {
  int command;
  const char *app;
  moonlet_config cfg;
} cli;

static const char usage_text[] =
  "usage: moonlet run APP.lua [options]\n"
  "       moonlet APP.lua [options]       same as 'moonlet run'\n"
  "       moonlet routes APP.lua          list the app's routes\n"
  "       moonlet new NAME                a starter app in NAME/, with a "
  "spec\n"
  "       moonlet version\n"
  "\n"
  "options:\n"
  "  --host H                 address to listen on (127.0.0.1; "
  "MOONLET_HOST)\n"
  "  --port P                 port, 0 for any free one (8080; MOONLET_PORT)\n"
  "  --workers N|auto         processes sharing the port (1; auto: one "
  "per CPU)\n"
  "  --reload                 reload when the app or its modules change\n"
  "  --access-log PATH|-      one line per response (off; - is stdout;\n"
  "                           SIGUSR1 reopens it)\n"
  "  --access-log-format F    combined (nginx's, then the request id and\n"
  "                           seconds) or json: one object a line\n"
  "  --log-level LEVEL        debug, info, warn or error (info)\n"
  "  --debug                  tracebacks in 500 responses\n"
  "  --max-body BYTES         request body limit, 413 (1m)\n"
  "  --max-url BYTES          request line limit, 414 (8k)\n"
  "  --max-headers BYTES      request headers limit, 431 (16k)\n"
  "  --header-timeout S       time to send a request head, 408 (10)\n"
  "  --keepalive-timeout S    idle time between requests (75)\n"
  "  --send-timeout S         a client taking no response bytes (60)\n"
  "  --grace S                time in-flight requests get at shutdown (10)\n"
  "  --max-connections N      more are answered 503 and closed (no cap)\n"
  "  --watchdog MS            log a loop busy this long, 0 for off (250)\n"
  "  --cpu-budget S           stop a handler computing this long without\n"
  "                           waiting: 503 (off)\n"
  "  --lua-memory MB          cap each Lua state's memory (no cap)\n"
  "  --tls-cert FULLCHAIN.pem HTTPS only, with this certificate chain\n"
  "  --tls-key KEY.pem        and its key (SIGHUP reads both again)\n"
  "  --shared-size BYTES      moonlet.shared's memory, for all workers "
  "(16m)\n"
  "  --proxy-headers          take the client's address and scheme from\n"
  "                           Forwarded / X-Forwarded-* of trusted peers\n"
  "  --forwarded-allow-ips L  those peers: addresses, CIDR ranges or *\n"
  "                           (127.0.0.1,::1)\n"
  "  --proxy-protocol         a PROXY v1/v2 header starts each connection,\n"
  "                           from those peers only\n"
  "  --drain-delay S          on SIGTERM, serve S more seconds with\n"
  "                           moonlet.draining() true, then stop (0)\n";

/* "1024", "64k", "1m": bytes; -1 when it is not a size. */
static long long parse_size(const char *s) {
  char *end;
  long long v;
  errno = 0;
  v = strtoll(s, &end, 10);
  if (errno != 0 || end == s || v < 0)
    return -1;
  if (*end == 'k' || *end == 'K')
    v *= 1024, end++;
  else if (*end == 'm' || *end == 'M')
    v *= 1024 * 1024, end++;
  else if (*end == 'g' || *end == 'G')
    v *= 1024LL * 1024 * 1024, end++;
  return *end == '\0' ? v : -1;
}

static double parse_seconds(const char *s) {
  char *end;
  double v = strtod(s, &end);
  return (end == s || *end != '\0' || !(v >= 0) || v > 1e9) ? -1 : v;
}

static int parse_port(const char *s) {
  long long v = parse_size(s);
  return (v < 0 || v > 65535 || strpbrk(s, "kKmMgG")) ? -1 : (int)v;
}

static int bad(const char *msg, const char *arg) {
  fprintf(stderr, "moonlet: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
  return -1;
}

/*
** Options with a value: each has a setter that checks the value and
** stores it in its field of the config; 0, or -1 once reported.
*/

static int set_text(void *field, const char *v) {
  *(const char **)field = v;
  return 0;
}

static int set_port(void *field, const char *v) {
  if ((*(int *)field = parse_port(v)) < 0)
    return bad("--port wants a number from 0 to 65535", v);
  return 0;
}

static int set_workers(void *field, const char *v) {
  int is_auto = strcmp(v, "auto") == 0;
  long long n = is_auto ? 0 : parse_size(v);
  if (n < 0 || n > 1024 || (n == 0 && !is_auto))
    return bad("--workers wants a count or 'auto'", v);
  *(int *)field = (int)n;
  return 0;
}

static int set_access_log_format(void *field, const char *v) {
  if (strcmp(v, "combined") != 0 && strcmp(v, "json") != 0)
    return bad("--access-log-format wants 'combined' or 'json'", v);
  *(const char **)field = v;
  return 0;
}

static int set_log_level(void *field, const char *v) {
  int i;
  for (i = 0; ml_log_levels[i] != NULL && strcmp(v, ml_log_levels[i]); i++)
    ;
  if (ml_log_levels[i] == NULL)
    return bad("--log-level wants debug, info, warn or error", v);
  *(int *)field = i;
  return 0;
}

/* --max-body, --max-url, --max-headers */
static int set_bytes(void *field, const char *v) {
  long long n = parse_size(v);
  if (n <= 0)
    return bad("a size in bytes (such as 4096, 64k or 1m) is wanted", v);
  *(size_t *)field = (size_t)n;
  return 0;
}

static int set_max_connections(void *field, const char *v) {
  long long n = parse_size(v);
  if (n <= 0 || n > 10000000 || strpbrk(v, "kKmMgG"))
    return bad("--max-connections wants a positive count", v);
  *(int *)field = (int)n;
  return 0;
}

static int set_watchdog(void *field, const char *v) {
  long long n = parse_size(v);
  if (n < 0 || n > 3600000 || strpbrk(v, "kKmMgG"))
    return bad("--watchdog wants milliseconds (0 turns it off)", v);
  *(int *)field = n == 0 ? -1 : (int)n;
  return 0;
}

static int set_cpu_budget(void *field, const char *v) {
  double d = parse_seconds(v);
  if (d <= 0)
    return bad("--cpu-budget wants a number of seconds", v);
  *(double *)field = d;
  return 0;
}

static int set_shared_size(void *field, const char *v) {
  long long n = parse_size(v);
  if (n < 64 * 1024 || n > (1LL << 40))
    return bad("--shared-size wants bytes, from 64k to 1024g", v);
  *(size_t *)field = (size_t)n;
  return 0;
}

static int set_allow_ips(void *field, const char *v) {
  char why[80];
  ml_trust *t = ml_trust_parse(v, why, sizeof why);
  if (t == NULL)
    return bad("--forwarded-allow-ips: not an address or range", why);
  ml_trust_free(t);
  *(const char **)field = v;
  return 0;
}

static int set_lua_memory(void *field, const char *v) {
  long long n = parse_size(v);
  if (n <= 0 || n > 1024 * 1024 || strpbrk(v, "kKmMgG"))
    return bad("--lua-memory wants megabytes", v);
  *(size_t *)field = (size_t)n * 1024 * 1024;
  return 0;
}

/* --header-timeout, --keepalive-timeout, --send-timeout */
static int set_timeout(void *field, const char *v) {
  double d = parse_seconds(v);
  if (d <= 0)
    return bad("a number of seconds is wanted", v);
  *(double *)field = d;
  return 0;
}

/* --grace, --drain-delay: 0 is allowed */
static int set_seconds(void *field, const char *v) {
  double d = parse_seconds(v);
  if (d < 0)
    return bad("a number of seconds is wanted", v);
  *(double *)field = d;
  return 0;
}

#define FIELD(f) offsetof(moonlet_config, f)

static const struct option {
  const char *name;
  int (*set)(void *field, const char *v);
  size_t field;
} options[] = {
  {"host", set_text, FIELD(host)},
  {"port", set_port, FIELD(port)},
  {"workers", set_workers, FIELD(workers)},
  {"access-log", set_text, FIELD(access_log)},
  {"access-log-format", set_access_log_format, FIELD(access_log_format)},
  {"log-level", set_log_level, FIELD(log_level)},
  {"max-body", set_bytes, FIELD(max_body)},
  {"max-url", set_bytes, FIELD(max_url)},
  {"max-headers", set_bytes, FIELD(max_headers)},
  {"max-connections", set_max_connections, FIELD(max_connections)},
  {"watchdog", set_watchdog, FIELD(watchdog_ms)},
  {"cpu-budget", set_cpu_budget, FIELD(cpu_budget)},
  {"lua-memory", set_lua_memory, FIELD(lua_memory)},
  {"shared-size", set_shared_size, FIELD(shared_size)},
  {"forwarded-allow-ips", set_allow_ips, FIELD(forwarded_allow_ips)},
  {"drain-delay", set_seconds, FIELD(drain_delay)},
  {"header-timeout", set_timeout, FIELD(header_timeout)},
  {"keepalive-timeout", set_timeout, FIELD(keepalive_timeout)},
  {"send-timeout", set_timeout, FIELD(send_timeout)},
  {"grace", set_seconds, FIELD(grace)},
  {"tls-cert", set_text, FIELD(tls_cert)},
  {"tls-key", set_text, FIELD(tls_key)},
};

/* One option with a value; -1 (reported) when the value is wrong. */
static int set_option(cli *c, const char *name, const char *v) {
  size_t i;
  for (i = 0; i < sizeof options / sizeof *options; i++)
    if (strcmp(name, options[i].name) == 0)
      return options[i].set((char *)&c->cfg + options[i].field, v);
  return bad("unknown option", name);
}

/* The options without a value: where each sets a 1, or NULL. */
static int *flag(cli *c, const char *name) {
  if (strcmp(name, "reload") == 0)
    return &c->cfg.reload;
  if (strcmp(name, "debug") == 0)
    return &c->cfg.debug;
  if (strcmp(name, "proxy-headers") == 0)
    return &c->cfg.proxy_headers;
  if (strcmp(name, "proxy-protocol") == 0)
    return &c->cfg.proxy_protocol;
  return NULL;
}

/* Options after the command; "--name value" or "--name=value". */
static int parse_options(cli *c, int argc, char **argv, int i) {
  for (; i < argc; i++) {
    char name[64];
    const char *a = argv[i], *eq, *v;
    int *on;
    if (strncmp(a, "--", 2) != 0) {
      if (c->app == NULL && c->command != CMD_VERSION) {
        c->app = a;
        continue;
      }
      return bad("unexpected argument", a);
    }
    a += 2;
    eq = strchr(a, '=');
    snprintf(name, sizeof name, "%.*s", eq ? (int)(eq - a) : (int)strlen(a),
             a);
    if (strcmp(name, "help") == 0) {
      c->command = CMD_HELP;
      return 0;
    }
    if ((on = flag(c, name)) != NULL) {
      if (eq != NULL)
        return bad("this option takes no value", argv[i]);
      *on = 1;
      continue;
    }
    if (eq != NULL)
      v = eq + 1;
    else if (i + 1 < argc)
      v = argv[++i];
    else
      return bad("this option needs a value", argv[i]);
    if (set_option(c, name, v) != 0)
      return -1;
  }
  return 0;
}

/* The environment's defaults, then the command and its options. */
static int parse(cli *c, int argc, char **argv) {
  const char *env;
  int i = 2;
  memset(c, 0, sizeof *c);
  moonlet_config_init(&c->cfg);
  c->cfg.handle_signals = 1;
  if ((env = getenv("MOONLET_HOST")) != NULL && *env != '\0')
    c->cfg.host = env;
  if ((env = getenv("MOONLET_PORT")) != NULL && *env != '\0' &&
      (c->cfg.port = parse_port(env)) < 0)
    return bad("MOONLET_PORT is not a port number", env);
  if (argc < 2)
    return bad("no command or app given", NULL);
  if (strcmp(argv[1], "run") == 0) {
    c->command = CMD_RUN;
  } else if (strcmp(argv[1], "routes") == 0) {
    c->command = CMD_ROUTES;
  } else if (strcmp(argv[1], "new") == 0) {
    if (argc != 3 || argv[2][0] == '-')
      return bad("moonlet new takes one name", NULL);
    c->command = CMD_NEW;
    c->app = argv[2];
    return 0;
  } else if (strcmp(argv[1], "version") == 0 ||
             strcmp(argv[1], "--version") == 0) {
    c->command = CMD_VERSION;
  } else if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0
             || strcmp(argv[1], "-h") == 0) {
    c->command = CMD_HELP;
  } else if (strncmp(argv[1], "-", 1) != 0) {
    c->command = CMD_RUN;              /* moonlet APP.lua ... */
    i = 1;
  } else {
    return bad("unknown command", argv[1]);
  }
  if (parse_options(c, argc, argv, i) != 0)
    return -1;
  if ((c->command == CMD_RUN || c->command == CMD_ROUTES) && c->app == NULL)
    return bad("no app file given", NULL);
  if ((c->cfg.tls_cert == NULL) != (c->cfg.tls_key == NULL))
    return bad("--tls-cert and --tls-key go together", NULL);
  if (c->cfg.tls_cert != NULL && c->cfg.proxy_protocol)
    return bad("--proxy-protocol does not work with TLS (a proxy in "
               "front ends TLS: let it send the PROXY header over HTTP)",
               NULL);
  return 0;
}

static int run(cli *c) {
  uv_loop_t *loop = uv_default_loop();
  moonlet_server *s;
  int port;
  if ((s = moonlet_new(loop, &c->cfg)) == NULL) {
    fprintf(stderr, "moonlet: out of memory\n");
    return 1;
  }
  if (moonlet_load(s, c->app) != 0) {
    ml_server_close_wait(s);
    return 1;
  }
  if (c->command == CMD_ROUTES) {
    int rc = moonlet_write_routes(s, stdout);
    ml_server_close_wait(s);
    return rc == 0 ? 0 : 1;
  }
  if ((port = moonlet_listen(s)) < 0) {
    fprintf(stderr, "moonlet: cannot listen on %s:%d: %s\n", c->cfg.host,
            c->cfg.port, moonlet_strerror(port));
    ml_server_close_wait(s);
    return 1;
  }
  printf(strchr(c->cfg.host, ':') ? "moonlet listening on %s://[%s]:%d\n"
                                  : "moonlet listening on %s://%s:%d\n",
         moonlet_scheme(s), c->cfg.host, port);
  fflush(stdout);
  uv_run(loop, UV_RUN_DEFAULT);   /* until moonlet_close has finished */
  uv_loop_close(loop);
  return 0;
}

/*
 * A server holds a descriptor per connection, and the usual soft limit
 * (1,024) is far below what one worker serves: raise it to the hard
 * limit, as a host would.  Failing leaves the limit as it was.
 */
static void raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

int moonlet_main(int argc, char **argv) {
  cli c;
  if (parse(&c, argc, argv) != 0) {
    fputs(usage_text, stderr);
    return 2;
  }
  switch (c.command) {
  case CMD_HELP:
    fputs(usage_text, stdout);
    return 0;
  case CMD_VERSION:
    puts(moonlet_version());
    return 0;
  case CMD_NEW:
    return ml_new_app(c.app);
  default:
    break;
  }
  raise_fd_limit();
  if (c.cfg.workers == 0)
    c.cfg.workers = (int)uv_available_parallelism();
  if (c.cfg.workers > 1 && c.command == CMD_RUN)
    return moonlet_run_workers(&c.cfg, c.app);
  return run(&c);
}
