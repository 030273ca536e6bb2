/*
 * master.c - --workers N: the master binds the port once (to learn it for
 * --port 0, and to hold it), forks N workers that each load the app and
 * listen on that port with SO_REUSEPORT, prints the listening line once
 * all of them listen, restarts a worker that dies, and passes SIGHUP and
 * SIGTERM/SIGINT on.  The master itself runs no libuv loop and no Lua: a
 * forked child would inherit the loop's descriptors and libuv's signal
 * handlers.  Serving is server.c's, in each worker.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/wait.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include "base/log.h"
#include "host/https.h"
#include "host/server.h"

#define RESTART_DELAY_MS 1000  /* before restarting one that died young */
#define STOP_MARGIN_MS 5000    /* past --grace, then SIGKILL */

/* One worker process as the master sees it.  Owned by the master. */
typedef struct {
  int id;                /* 1..N: moonlet.worker.id */
  pid_t pid;             /* 0: not running */
  int ready;             /* it said it listens */
  int restart;           /* to fork again at restart_at */
  uint64_t started;      /* ms, monotonic */
  uint64_t restart_at;
} worker;

/* The master's state; it lives on moonlet_run_workers' stack. */
typedef struct {
  const moonlet_config *cfg;
  const char *app;
  const char *host;
  pid_t pid;             /* the master's own */
  worker *w;
  int n;
  int fd;                /* bound, never listening: holds the port */
  int port;
  char lock[PATH_MAX];   /* the lock file of {single = true} timers */
  ml_tls *tls;           /* the flags' pair, made before any fork: every
                            worker serves with its copy, so a session
                            one began resumes on another */
  unsigned char ticket_keys[ML_TLS_TICKET_KEYS];  /* for a pair the app's
                            options name, which each worker loads */
  const char *scheme;    /* "https" once a worker said it speaks TLS */
  int shared_fd;         /* moonlet.shared's memory: made here, before the
                            forks, and held, so a restarted worker finds
                            the store as it was */
  int ready_pipe[2];     /* a worker writes "ID\n" once it listens */
  char ready_buf[64];
  size_t ready_len;
  int announced;         /* the listening line is out */
  int stopping;
  uint64_t stop_deadline;
  int status;            /* the exit status */
} master;

static int sig_pipe[2] = { -1, -1 };   /* signal handler -> master loop */
#define NSIGS 5
static const int sigs[NSIGS] = { SIGCHLD, SIGHUP, SIGTERM, SIGINT, SIGUSR1 };

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The self-pipe trick: the loop below reads the signal numbers. */
static void on_signal(int signum) {
  int saved = errno;
  unsigned char b = (unsigned char)signum;
  if (write(sig_pipe[1], &b, 1) < 0) {
    /* full: thousands are pending already; nothing to do */
  }
  errno = saved;
}

static void catch_signals(void (*handler)(int)) {
  struct sigaction sa;
  int i;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  for (i = 0; i < NSIGS; i++) {
    sa.sa_flags = SA_RESTART | (sigs[i] == SIGCHLD ? SA_NOCLDSTOP : 0);
    sigaction(sigs[i], &sa, NULL);
  }
}

static void block_signals(int how) {
  sigset_t set;
  int i;
  sigemptyset(&set);
  for (i = 0; i < NSIGS; i++)
    sigaddset(&set, sigs[i]);
  sigprocmask(how, &set, NULL);
}

/*
** {======================================================
** A worker (in the child)
** =======================================================
*/

/*
 * {single = true} timers run only in the worker that holds the lock
 * file when they fire, which the kernel frees when that worker dies, so
 * another one takes over at its next firing.  One per worker, on its
 * serve()'s stack.
 */
typedef struct {
  const char *path;
  int fd;                /* once opened; -1: not yet, -2: cannot */
  int worker_id;
} single_lock;

static int single_turn(void *ud) {
  single_lock *l = ud;
  if (l->fd == -1 && (l->fd = open(l->path, O_RDWR | O_CLOEXEC)) < 0) {
    ml_log(MOONLET_LOG_ERROR, "cannot open %s: %s: {single = true} timers "
           "do not run in worker %d", l->path, strerror(errno),
           l->worker_id);
    l->fd = -2;                     /* logged once */
  }
  return l->fd >= 0 && flock(l->fd, LOCK_EX | LOCK_NB) == 0;
}

/* Loads and serves the app on a loop of its own; the exit status. */
static int serve(master *m, worker *w, const moonlet_config *cfg) {
  single_lock lock = { m->lock, -1, w->id };
  uv_loop_t loop;
  moonlet_server *s;
  char line[32];
  int port, n;
  if (uv_loop_init(&loop) != 0 || (s = moonlet_new(&loop, cfg)) == NULL) {
    fprintf(stderr, "moonlet: worker %d: out of memory\n", w->id);
    return 1;
  }
  if (ml_server_set_worker(s, w->id, m->shared_fd, single_turn,
                           &lock) != 0) {
    fprintf(stderr, "moonlet: worker %d: out of memory\n", w->id);
    ml_server_close_wait(s);
    return 1;
  }
  ml_https_share(s, m->tls, m->ticket_keys);   /* the server frees it */
  m->tls = NULL;
  if (moonlet_load(s, m->app) != 0) {
    ml_server_close_wait(s);
    return 1;
  }
  if ((port = moonlet_listen(s)) < 0) {
    ml_log(MOONLET_LOG_ERROR, "worker %d: cannot listen on %s:%d: %s",
           w->id, m->host, m->port, moonlet_strerror(port));
    ml_server_close_wait(s);
    return 1;
  }
  n = snprintf(line, sizeof line, "%d %s\n", w->id, moonlet_scheme(s));
  if (write(m->ready_pipe[1], line, (size_t)n) != n)
    ml_log(MOONLET_LOG_WARN, "worker %d: cannot tell the master it "
           "listens", w->id);
  close(m->ready_pipe[1]);
  uv_run(&loop, UV_RUN_DEFAULT);   /* until moonlet_close has finished */
  uv_loop_close(&loop);
  if (lock.fd >= 0)
    close(lock.fd);                /* frees the lock, if we held it */
  return 0;
}

/*
 * The child's whole life after fork.  It drops what is the master's, puts
 * itself in its own process group (a terminal's Ctrl-C reaches only the
 * master, which passes one stop on: a worker that got both would take the
 * second as "close now"), and asks to be stopped if the master dies.
 */
static void worker_main(master *m, worker *w) {
  moonlet_config cfg = *m->cfg;
  catch_signals(SIG_DFL);
  signal(SIGHUP, SIG_IGN);      /* until the server handles it: a reload
                                   during the first load must not kill */
  signal(SIGUSR1, SIG_IGN);     /* nor a log rotation */
  block_signals(SIG_UNBLOCK);
  close(sig_pipe[0]);
  close(sig_pipe[1]);
  close(m->ready_pipe[0]);
  close(m->fd);
  setpgid(0, 0);
#ifdef __linux__
  prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
  if (getppid() != m->pid)      /* the master died before prctl */
    _exit(0);
  cfg.port = m->port;
  cfg.host = m->host;
  cfg.handle_signals = 1;
  cfg.workers = 1;
  m->status = serve(m, w, &cfg);
  fflush(NULL);
  _exit(m->status);             /* not exit: the host's atexit is not ours */
}

/* }====================================================== */

/*
** {======================================================
** The master
** =======================================================
*/

/* Forks worker w; signals stay blocked until each side is ready. */
static void spawn(master *m, worker *w) {
  pid_t pid;
  block_signals(SIG_BLOCK);
  fflush(NULL);                 /* or the child writes our buffers again */
  if ((pid = fork()) == 0)
    worker_main(m, w);
  block_signals(SIG_UNBLOCK);
  w->restart = 0;
  w->ready = 0;
  w->started = now_ms();
  if (pid < 0) {
    ml_log(MOONLET_LOG_ERROR, "cannot start worker %d: %s", w->id,
           strerror(errno));
    w->pid = 0;
    w->restart = 1;
    w->restart_at = w->started + RESTART_DELAY_MS;
    return;
  }
  w->pid = pid;
}

static void signal_all(master *m, int signum) {
  int i;
  for (i = 0; i < m->n; i++)
    if (m->w[i].pid > 0)
      kill(m->w[i].pid, signum);
}

/* SIGTERM/SIGINT: every worker drains; a second one closes them now. */
static void begin_stop(master *m, const char *why) {
  int i;
  if (m->stopping) {
    ml_log(MOONLET_LOG_WARN, "%s again: workers close now", why);
    signal_all(m, SIGTERM);
    return;
  }
  ml_log(MOONLET_LOG_INFO, "%s: stopping %d worker(s) (grace %.3g s)", why,
         m->n, m->cfg->grace);
  m->stopping = 1;
  m->stop_deadline = now_ms() + STOP_MARGIN_MS +
                     (uint64_t)((m->cfg->grace + m->cfg->drain_delay) * 1000);
  for (i = 0; i < m->n; i++)
    m->w[i].restart = 0;
  signal_all(m, SIGTERM);
}

/* "exited with status 1", "was killed by signal 9 (Killed)" */
static void describe(int st, char *buf, size_t size) {
  if (WIFEXITED(st))
    snprintf(buf, size, "exited with status %d", WEXITSTATUS(st));
  else if (WIFSIGNALED(st))
    snprintf(buf, size, "was killed by signal %d (%s)", WTERMSIG(st),
             strsignal(WTERMSIG(st)));
  else
    snprintf(buf, size, "ended (status %#x)", st);
}

/* SIGCHLD: collect every ended worker; restart it unless stopping. */
static void reap(master *m) {
  char why[96];
  pid_t pid;
  int st, i;
  while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
    for (i = 0; i < m->n && m->w[i].pid != pid; i++)
      ;
    if (i == m->n)
      continue;
    m->w[i].pid = 0;
    describe(st, why, sizeof why);
    if (m->stopping) {
      ml_log(MOONLET_LOG_DEBUG, "worker %d (pid %d) %s", i + 1, (int)pid,
             why);
    } else if (!m->announced) {   /* cannot load the app, or bind */
      ml_log(MOONLET_LOG_ERROR, "worker %d (pid %d) %s before it "
             "listened: stopping", i + 1, (int)pid, why);
      m->status = 1;
      begin_stop(m, "a worker failed");
    } else {
      m->w[i].restart = 1;          /* a crash loop waits between tries */
      m->w[i].restart_at = now_ms() - m->w[i].started < RESTART_DELAY_MS
                           ? now_ms() + RESTART_DELAY_MS : now_ms();
      ml_log(MOONLET_LOG_WARN, "worker %d (pid %d) %s; restarting it%s",
             i + 1, (int)pid, why,
             m->w[i].restart_at > now_ms() ? " in 1 s" : "");
    }
  }
}

static void announce(master *m) {
  printf(strchr(m->host, ':') ? "moonlet listening on %s://[%s]:%d\n"
                              : "moonlet listening on %s://%s:%d\n",
         m->scheme != NULL ? m->scheme : "http", m->host, m->port);
  fflush(stdout);
  m->announced = 1;
}

/* Reads "ID SCHEME\n" lines from workers that listen now. */
static void read_ready(master *m) {
  ssize_t r;
  char *nl;
  int i, id, all = 1;
  r = read(m->ready_pipe[0], m->ready_buf + m->ready_len,
           sizeof m->ready_buf - 1 - m->ready_len);
  if (r <= 0)
    return;
  m->ready_len += (size_t)r;
  m->ready_buf[m->ready_len] = '\0';
  while ((nl = strchr(m->ready_buf, '\n')) != NULL) {
    *nl = '\0';
    id = atoi(m->ready_buf);
    if (strstr(m->ready_buf, " https") != NULL)
      m->scheme = "https";
    if (id >= 1 && id <= m->n && m->w[id - 1].pid > 0) {
      m->w[id - 1].ready = 1;
      if (m->announced)
        ml_log(MOONLET_LOG_INFO, "worker %d (pid %d) listens again", id,
               (int)m->w[id - 1].pid);
    }
    m->ready_len -= (size_t)(nl + 1 - m->ready_buf);
    memmove(m->ready_buf, nl + 1, m->ready_len + 1);
  }
  for (i = 0; i < m->n; i++)
    all = all && m->w[i].ready;
  if (all && !m->announced && !m->stopping)
    announce(m);
}

/* SIGHUP: the pair a restarted worker starts with is the new one too;
 * the workers log whether it loads (keeping the old one if not). */
static void reread_pair(master *m) {
  char err[256];
  if (m->tls != NULL)
    ml_tls_reload(m->tls, m->cfg->tls_cert, m->cfg->tls_key, err,
                  sizeof err);
}

static void on_signals(master *m) {
  unsigned char b[64];
  ssize_t r, i;
  while ((r = read(sig_pipe[0], b, sizeof b)) > 0)
    for (i = 0; i < r; i++) {
      if (b[i] == SIGCHLD) {
        reap(m);
      } else if (b[i] == SIGHUP) {
        ml_log(MOONLET_LOG_INFO, "SIGHUP: reloading %d worker(s)", m->n);
        reread_pair(m);
        signal_all(m, SIGHUP);
      } else if (b[i] == SIGUSR1) {   /* logrotate: each reopens its log */
        signal_all(m, SIGUSR1);
      } else {
        begin_stop(m, b[i] == SIGINT ? "SIGINT" : "SIGTERM");
      }
    }
}

/* The next thing due (a restart, the stop deadline), in ms from now. */
static int next_timeout(master *m, uint64_t now) {
  uint64_t t = now + 1000;
  int i;
  for (i = 0; i < m->n; i++)
    if (m->w[i].restart && m->w[i].restart_at < t)
      t = m->w[i].restart_at;
  if (m->stopping && m->stop_deadline < t)
    t = m->stop_deadline;
  return t > now ? (int)(t - now) : 0;
}

/* Runs until every worker has ended after a stop. */
static void supervise(master *m) {
  struct pollfd fds[2];
  uint64_t now;
  int i, alive;
  for (;;) {
    now = now_ms();
    for (alive = 0, i = 0; i < m->n; i++) {
      if (m->w[i].restart && !m->stopping && now >= m->w[i].restart_at)
        spawn(m, &m->w[i]);
      alive += m->w[i].pid > 0;
    }
    if (m->stopping && alive == 0)
      return;
    if (m->stopping && now >= m->stop_deadline) {
      ml_log(MOONLET_LOG_WARN, "%d worker(s) still running: killing them",
             alive);
      signal_all(m, SIGKILL);
      m->stop_deadline = now + 1000;
    }
    fds[0].fd = sig_pipe[0];
    fds[1].fd = m->ready_pipe[0];
    fds[0].events = fds[1].events = POLLIN;
    if (poll(fds, 2, next_timeout(m, now_ms())) < 0 && errno != EINTR)
      ml_log(MOONLET_LOG_ERROR, "poll: %s", strerror(errno));
    if (fds[1].revents & POLLIN)
      read_ready(m);
    if (fds[0].revents & POLLIN)
      on_signals(m);
  }
}

/* }====================================================== */

/* Binds the port once: an ephemeral one is chosen here, for all. */
static int bind_port(master *m) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int rc;
  if ((rc = ml_server_resolve(m->host, m->cfg->port, &ss)) != 0 ||
      (rc = ml_server_reuseport_socket((struct sockaddr *)&ss)) < 0)
    return rc;
  m->fd = rc;
  if (getsockname(m->fd, (struct sockaddr *)&ss, &len) != 0)
    return -errno;
  m->port = ss.ss_family == AF_INET6
              ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
              : ntohs(((struct sockaddr_in *)&ss)->sin_port);
  return 0;
}

static int make_pipe(int p[2]) {
  int i;
  if (pipe(p) != 0)
    return -1;
  for (i = 0; i < 2; i++)
    fcntl(p[i], F_SETFD, FD_CLOEXEC);
  fcntl(p[0], F_SETFL, O_NONBLOCK);
  fcntl(p[1], F_SETFL, O_NONBLOCK);
  return 0;
}

/* A fresh lock file that every worker opens for itself. */
static int make_lock(master *m) {
  const char *dir = getenv("TMPDIR");
  int fd;
  snprintf(m->lock, sizeof m->lock, "%s/moonlet-single-XXXXXX",
           dir != NULL && *dir != '\0' ? dir : "/tmp");
  if ((fd = mkstemp(m->lock)) < 0)
    return -errno;
  close(fd);
  return 0;
}

/* What the master made, undone (the workers have ended). */
static void cleanup(master *m) {
  int i;
  catch_signals(SIG_DFL);
  for (i = 0; i < 2; i++) {
    if (sig_pipe[i] >= 0)
      close(sig_pipe[i]);
    if (m->ready_pipe[i] >= 0)
      close(m->ready_pipe[i]);
    sig_pipe[i] = -1;
  }
  if (m->fd >= 0)
    close(m->fd);
  ml_tls_free(m->tls);
  OPENSSL_cleanse(m->ticket_keys, sizeof m->ticket_keys);
  if (m->shared_fd >= 0)
    close(m->shared_fd);
  if (m->lock[0] != '\0')
    unlink(m->lock);
  free(m->w);
}

int moonlet_run_workers(const moonlet_config *cfg, const char *app_path) {
  master m;
  FILE *f;
  int i, rc;
  memset(&m, 0, sizeof m);
  m.cfg = cfg;
  m.app = app_path;
  m.host = cfg->host != NULL ? cfg->host : "127.0.0.1";
  m.n = cfg->workers > 0 ? cfg->workers : 1;
  m.fd = m.ready_pipe[0] = m.ready_pipe[1] = m.shared_fd = -1;
  m.pid = getpid();
  ml_log_set_level(cfg->log_level);
  if ((f = fopen(app_path, "r")) == NULL) {
    fprintf(stderr, "moonlet: cannot open %s: %s\n", app_path,
            strerror(errno));
    return 1;
  }
  fclose(f);
  if ((rc = bind_port(&m)) != 0) {
    fprintf(stderr, "moonlet: cannot listen on %s:%d: %s\n", m.host,
            cfg->port, moonlet_strerror(rc));
    cleanup(&m);
    return 1;
  }
  if (ml_tls_ticket_keys(m.ticket_keys) != 0 ||
      (cfg->tls_cert != NULL &&
       ml_https_load(cfg->tls_cert, cfg->tls_key, NULL, &m.tls) != 0)) {
    fprintf(stderr, "moonlet: cannot listen on %s:%d: %s\n", m.host,
            cfg->port, moonlet_strerror(MOONLET_ETLS));
    cleanup(&m);
    return 1;
  }
  if ((m.w = calloc((size_t)m.n, sizeof *m.w)) == NULL ||
      make_pipe(sig_pipe) != 0 || make_pipe(m.ready_pipe) != 0 ||
      (rc = make_lock(&m)) != 0 || (m.shared_fd = ml_shared_memfd()) < 0) {
    fprintf(stderr, "moonlet: cannot start the workers: %s\n",
            strerror(errno));
    cleanup(&m);
    return 1;
  }
  catch_signals(on_signal);
  for (i = 0; i < m.n; i++) {
    m.w[i].id = i + 1;
    spawn(&m, &m.w[i]);
  }
  supervise(&m);
  cleanup(&m);
  return m.status;
}
