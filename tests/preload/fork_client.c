/* fork_client.c - a plain sockets program that forks after connecting (for the preload
 * layer's VM test; it knows nothing of utcp).
 *
 *   fork_client IP PORT      against an echo server
 *
 * 1. connects, echoes 64 KiB through the connection (poll to wait);
 * 2. forks a child that exits at once: the parent keeps using the connection (64 KiB);
 * 3. forks a worker child and closes its own copy: the child echoes 256 KiB more
 *    (epoll and select to wait), shuts down its side, reads to end of stream, exits 0.
 * Prints "fork-client: OK ..." and exits 0 when every byte came back as sent. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static void die(const char* what) {
  fprintf(stderr, "fork-client[%d]: %s: %s\n", (int)getpid(), what, strerror(errno));
  exit(1);
}

static unsigned char pattern(size_t i) { return (unsigned char)(i * 131 + (i >> 9)); }

enum { WAIT_POLL, WAIT_EPOLL, WAIT_SELECT };

static void wait_readable(int fd, int how) {
  if (how == WAIT_POLL) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 60000) != 1) die("poll");
  } else if (how == WAIT_EPOLL) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 77};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
    struct epoll_event out;
    if (epoll_wait(ep, &out, 1, 60000) != 1 || out.data.u64 != 77) die("epoll_wait");
    close(ep);
  } else {
    fd_set r;
    FD_ZERO(&r);
    FD_SET(fd, &r);
    struct timeval tv = {60, 0};
    if (select(fd + 1, &r, NULL, NULL, &tv) != 1 || !FD_ISSET(fd, &r)) die("select");
  }
}

/* Sends `n` bytes of the pattern from offset `off` and checks they come back. */
static void echo(int fd, size_t off, size_t n, int how) {
  unsigned char buf[16384];
  size_t sent = 0, got = 0;
  while (got < n) {
    if (sent < n) {
      size_t k = n - sent < sizeof buf ? n - sent : sizeof buf;
      for (size_t i = 0; i < k; ++i) buf[i] = pattern(off + sent + i);
      ssize_t w = write(fd, buf, k);
      if (w < 0) die("write");
      sent += (size_t)w;
    }
    while (got < sent) {
      wait_readable(fd, how);
      ssize_t r = read(fd, buf, sizeof buf);
      if (r <= 0) die(r == 0 ? "early end of stream" : "read");
      for (ssize_t i = 0; i < r; ++i)
        if (buf[i] != pattern(off + got + (size_t)i)) {
          errno = EBADMSG;
          die("echoed byte differs");
        }
      got += (size_t)r;
      if (sent < n) break;
    }
  }
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: fork_client IP PORT\n");
    return 2;
  }
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
  if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) return 2;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) die("socket");
  if (connect(fd, (struct sockaddr*)&sa, sizeof sa) < 0) die("connect");
  echo(fd, 0, 65536, WAIT_POLL);

  pid_t p = fork();
  if (p < 0) die("fork");
  if (p == 0) exit(0); /* a child that does nothing with the socket */
  int st;
  if (waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st)) die("first child");
  echo(fd, 65536, 65536, WAIT_POLL); /* still the parent's */

  p = fork();
  if (p < 0) die("fork");
  if (p == 0) {
    echo(fd, 131072, 131072, WAIT_EPOLL);
    echo(fd, 262144, 131072, WAIT_SELECT);
    if (shutdown(fd, SHUT_WR) < 0) die("shutdown");
    char c;
    ssize_t r = read(fd, &c, 1);
    if (r != 0) die("expected end of stream");
    close(fd);
    fprintf(stderr, "fork-client[%d]: child echoed 256 KiB and saw the end of stream\n", (int)getpid());
    exit(0);
  }
  close(fd); /* the child has it now */
  if (waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st)) {
    if (WIFSIGNALED(st))
      fprintf(stderr, "fork-client: worker child killed by signal %d (%s)\n", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else
      fprintf(stderr, "fork-client: worker child failed (exit status %d)\n", WEXITSTATUS(st));
    return 1;
  }
  printf("fork-client: OK (parent 128 KiB, child 256 KiB after fork)\n");
  return 0;
}
