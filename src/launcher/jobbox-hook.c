/*
 * jobbox-hook: the first program of jobbox's that a scheduler starts as root.
 *
 * LSF and openlava hand a queue PRE_EXEC/POST_EXEC the job's submission environment, which
 * the user chose (docs/security.md). Whatever a dynamically linked program or an interpreter
 * does before its first line — the loader reading LD_PRELOAD and LD_AUDIT, node reading
 * NODE_OPTIONS, OpenSSL reading OPENSSL_CONF — would then run the user's code as root. So
 * this program is linked statically (musl, no loader, no start-up code that reads the
 * environment), and before it runs anything else it:
 *   - takes root's own identity and umask (openlava leaves the user's gid, groups and umask);
 *   - resets signal dispositions, the signal mask and the resource limits the job may have set;
 *   - checks that it and the directories above it belong to root and nobody else can write
 *     them, so the cli.js beside it is the admin's;
 *   - saves the environment, byte for byte, in an anonymous memory file handed to jobbox as
 *     fd 3: the job's variables reach jobbox only as data;
 *   - execs node by absolute path with fixed arguments and an environment of its own.
 *
 * The hook is chosen by the name it was run by (hooks/lsf/pre-exec, hooks/slurm/prolog, … are
 * symlinks to this file), or by its first argument when run as jobbox-hook. Other arguments
 * come from the scheduler's configuration (lsb.queues), never from the job.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef NODE
#define NODE "/usr/bin/node"
#endif

/* The fd jobbox reads the saved environment from (src/hook-env.ts). */
#define ENV_FD 3

static const struct { const char *name; const char *words[3]; } HOOKS[] = {
  { "pre-exec", { "lsf", "pre-exec" } },
  { "post-exec", { "lsf", "post-exec" } },
  { "prolog", { "slurm", "prolog" } },
  { "epilog", { "slurm", "epilog" } },
  { "gc", { "gc" } },
};

/* The error shape of jobbox (src/errors.ts). Exit 99: LSF's "do not retry" (a broken install
 * does not heal by requeueing); Slurm's Prolog drains the node on any non-zero exit, which is
 * what an admin wants when the hook itself cannot run. */
static void fail(const char *problem, const char *value) {
  fprintf(stderr, "jobbox: hook launcher: %s: %s\n", problem, value);
  exit(99);
}

static void failErrno(const char *problem, const char *value) {
  char text[PATH_MAX + 64];
  snprintf(text, sizeof text, "%s (%s)", problem, strerror(errno));
  fail(text, value);
}

/* Root-owned and not writable by group or others, the rule the config follows
 * (src/config/load.ts). No exception for sticky directories such as /tmp: node looks for a
 * package it lacks in node_modules of every directory above the install (ssh2 asks for the
 * optional cpu-features), so anyone who may create /tmp/node_modules would run code as root.
 * A checkout built below one (a CI clone in /tmp) gets the exception compiled in, with a
 * warning from src/launcher/build.sh. */
static void checkOwned(const char *path, int dir) {
  struct stat st;
  if (lstat(path, &st) != 0) failErrno("cannot stat", path);
#ifdef JOBBOX_ALLOW_STICKY
  int sticky = dir && (st.st_mode & S_ISVTX) != 0;
#else
  int sticky = 0;
  (void)dir;
#endif
  if (st.st_uid != 0 || (!sticky && (st.st_mode & 022) != 0)) fail("not owned by root or writable by group or others", path);
}

/* Every component of the file's real path, so no symlink on the way can be swapped. */
static void checkTree(const char *file) {
  char path[PATH_MAX];
  if (realpath(file, path) == NULL) failErrno("cannot resolve", file);
  checkOwned(path, 0);
  for (char *slash = strrchr(path, '/'); slash != NULL; slash = strrchr(path, '/')) {
    if (slash == path) {
      checkOwned("/", 1);
      break;
    }
    *slash = '\0';
    checkOwned(path, 1);
  }
}

static const char *baseName(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

/* Writes every environment string with its NUL into an anonymous file, rewound, at ENV_FD. */
static void saveEnvironment(char **envp) {
  int fd = (int)syscall(SYS_memfd_create, "jobbox-job-env", 0);
  if (fd < 0) failErrno("cannot create the environment file", "memfd_create");
  for (char **e = envp; *e != NULL; e++) {
    const char *p = *e;
    size_t left = strlen(p) + 1;
    while (left > 0) {
      ssize_t n = write(fd, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) failErrno("cannot save the environment", "memfd");
      p += n;
      left -= (size_t)n;
    }
  }
  if (lseek(fd, 0, SEEK_SET) != 0) failErrno("cannot rewind the environment file", "memfd");
  if (fd != ENV_FD) {
    if (dup2(fd, ENV_FD) != ENV_FD) failErrno("cannot place the environment file", "fd 3");
    close(fd);
  }
}

int main(int argc, char **argv, char **envp) {
  int root = geteuid() == 0;
  if (root) {
    /* Before anything is created: files jobbox makes as root are root's, mode as jobbox says. */
    if (setgroups(0, NULL) != 0) failErrno("cannot drop supplementary groups", "setgroups");
    if (setgid(0) != 0) failErrno("cannot take gid 0", "setgid");
  }
  umask(022);
  if (chdir("/") != 0) failErrno("cannot change directory", "/");

  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  for (int sig = 1; sig < NSIG; sig++) signal(sig, SIG_DFL);
  /* A core file of a root process holding job keys must not land anywhere. */
  struct rlimit zero = { 0, 0 };
  setrlimit(RLIMIT_CORE, &zero);
  /* The job's limits may have been applied already (LSF applies some before PRE_EXEC in some
   * releases): a tiny file, memory or process limit would make jobbox fail, and requeue, on
   * every try. Unlimited where root may raise them, else as far as the hard limit goes. */
  static const int LIMITS[] = { RLIMIT_FSIZE, RLIMIT_DATA, RLIMIT_AS, RLIMIT_STACK, RLIMIT_NPROC, RLIMIT_NOFILE, RLIMIT_CPU };
  for (size_t i = 0; i < sizeof LIMITS / sizeof LIMITS[0]; i++) {
    struct rlimit lim = { RLIM_INFINITY, RLIM_INFINITY };
    if (setrlimit(LIMITS[i], &lim) == 0 || getrlimit(LIMITS[i], &lim) != 0) continue;
    lim.rlim_cur = lim.rlim_max;
    setrlimit(LIMITS[i], &lim);
  }

  int arg = 1;
  const char *name = argc > 0 ? baseName(argv[0]) : "";
  if (strcmp(name, "jobbox-hook") == 0 && argc > 1) name = argv[arg++];
  size_t hook = 0;
  while (hook < sizeof HOOKS / sizeof HOOKS[0] && strcmp(HOOKS[hook].name, name) != 0) hook++;
  if (hook == sizeof HOOKS / sizeof HOOKS[0]) fail("unknown hook (pre-exec, post-exec, prolog, epilog or gc)", name);

  /* /proc/self/exe is the kernel's word for which file runs, whatever symlink led here. */
  char self[PATH_MAX];
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  if (len <= 0) failErrno("cannot find itself", "/proc/self/exe");
  self[len] = '\0';
  char cli[PATH_MAX];
  char *slash = strrchr(self, '/');
  if (slash == NULL || (size_t)(slash - self) + sizeof "/cli.js" > sizeof cli) fail("cannot find cli.js beside", self);
  snprintf(cli, sizeof cli, "%.*s/cli.js", (int)(slash - self), self);
  if (root) {
    checkTree(self);
    checkTree(cli);
    checkTree(NODE);
  }

  saveEnvironment(envp);

  char *args[64];
  int n = 0;
  args[n++] = "node";
  args[n++] = cli;
  for (int w = 0; w < 3 && HOOKS[hook].words[w] != NULL; w++) args[n++] = (char *)HOOKS[hook].words[w];
  for (; arg < argc; arg++) {
    if (n >= (int)(sizeof args / sizeof args[0]) - 1) fail("too many arguments", name);
    args[n++] = argv[arg];
  }
  args[n] = NULL;
  char *env[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "JOBBOX_JOB_ENV_FD=3", NULL };
  execve(NODE, args, env);
  failErrno("cannot run node", NODE);
  return 99;
}
