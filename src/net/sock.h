/* Socket helpers. Thread: any. */
#ifndef CK_NET_SOCK_H
#define CK_NET_SOCK_H

/* Opens a non-blocking listening TCP socket on host:port (host "" or "0.0.0.0" = any IPv4,
 * "::" = any IPv6, or a literal address or name). SO_REUSEADDR set. Returns the fd or a
 * negative CK_E* code; *msg (static string) says what failed. */
int ck_sock_listen(const char *host, int port, int backlog, const char **msg);
/* Accepts one connection as a non-blocking fd with TCP_NODELAY; -1 with errno on failure. */
int ck_sock_accept(int lfd);
/* The port a listening socket is bound to (for port 0). */
int ck_sock_port(int fd);

#endif
