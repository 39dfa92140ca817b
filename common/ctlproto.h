/* ctlproto: the shim <-> helperd control protocol (unix stream socket).
 *
 * Text lines ending in '\n'. A client line is at most CTL_LINE_MAX bytes
 * (including '\n'); a server reply at most CTL_REPLY_MAX. Fields are
 * separated by one space; names are service names (conf_valid_name).
 * Every request gets exactly one reply line, in order.
 *
 *   HELLO <service> [<acl-token>]   (the token: a name nobody defines)
 *       Binds this control connection to <service>. helperd checks the
 *       peer's SO_PEERCRED uid against the service's "user" (if any).
 *       OK port=<outbound-port> dns=<dns_domain> [direct=1]
 *          [inbound=strict|permissive svc_port=<port>]
 *          [up=<dest>,<addr>,<port>]...
 *       ERR <ERRNO-NAME> <message>
 *          [cc=<congestion-control>]
 *       direct=1: this helperd offers DIRECT (same_node_mtls = false and
 *       it can destroy sockets); without it the shim never asks.
 *       cc: loopback_congestion, for the app's sockets that reach
 *       helperd (or a local instance) over loopback; absent: leave them.
 *   CONNECT <destination> <local-port> [<socket-cookie>]
 *       Registers the original destination of the app socket whose local
 *       (loopback) port is <local-port>; that same socket connects to
 *       127.0.0.1:<outbound-port> (or [::1]:<outbound-port>), before
 *       (an explicitly bound socket) or just after this request (the
 *       usual case: the kernel's connect picks the port; helperd holds
 *       the connection up to 2 s for its CONNECT).
 *       <socket-cookie>: the socket's SO_COOKIE, decimal (the shim always
 *       sends it). helperd places a connection from <local-port> with
 *       this registration only if sock_diag says the connecting socket
 *       belongs to this client's uid (any, for uid 0) and, with a
 *       cookie, is that very socket; otherwise the connection keeps
 *       waiting for its own registration (a registration never takes
 *       another user's connection).
 *       The registration lives CTL_PENDING_TTL_MS. Checked first against
 *       the cached intentions: a denied pair gets ERR ECONNREFUSED at once.
 *       OK
 *       ERR <ERRNO-NAME> <message>     (ECONNREFUSED, EHOSTUNREACH, EPROTO..)
 *       After an ERR for a denied pair or a missing instance, a connection
 *       from <local-port> to the outbound port is accepted and reset: a
 *       non-blocking socket sees a reset on first I/O.
 *   DIRECT <destination>
 *       Asked (after HELLO said direct=1) before an unbound app socket
 *       connects: may it connect straight to <destination>'s instance on
 *       this node? Yes when that instance is passing, not inbound=strict,
 *       the intention allows the pair and the tracking table has room.
 *       OK direct <addr> <port>    connect the app socket there, then TRACK
 *       OK relay                   do as today: outbound port + CONNECT
 *                                  (a denied pair is refused there)
 *       ERR EINVAL|EPROTO <message>
 *   TRACK <destination> <local-addr> <local-port> <service-addr>
 *         <service-port>
 *       The app socket DIRECT sent to <destination> is connected (or
 *       connecting) from <local-addr>:<local-port> to <service-addr>:
 *       <service-port> (numeric addresses, as the socket sees them).
 *       helperd checks that it is the destination's direct local
 *       instance, that the socket exists and belongs to the client's uid
 *       (sock_diag), re-checks the intention, and keeps the 4-tuple (at
 *       most DIRECT_MAX; closed ones are dropped within about a second)
 *       so that a later deny destroys the socket (SOCK_DESTROY).
 *       OK
 *       ERR <ERRNO-NAME> <message>  (EINVAL, ENOENT, EACCES, ECONNREFUSED
 *                                    denied meanwhile, ENOSPC table full;
 *                                    the last two destroy the socket)
 *   ACCEPT <local-addr> <local-port> <peer-addr> <peer-port> <socket-cookie>
 *       Asked by a shim in a server (inbound) after accept(): is the
 *       accepted socket (numeric addresses as it sees them; its SO_COOKIE)
 *       the other end of a connection helperd made? "mesh" only if
 *       helperd's socket has exactly that 4-tuple and, by sock_diag, the
 *       service's socket with that 4-tuple is the one with that cookie.
 *       OK mesh <source-spiffe-id> <source-addr> <source-port>
 *       OK direct
 *       ERR EINVAL <usage>     (the old two-port form included)
 *   PING
 *       OK pong
 *
 * Anything else, or a line over the limit, gets "ERR EPROTO <message>" and,
 * for an over-long line, the connection is closed. */
#ifndef MESH_CTLPROTO_H
#define MESH_CTLPROTO_H

#define CTL_LINE_MAX        1024
#define CTL_REPLY_MAX       32768
#define CTL_PENDING_TTL_MS  5000
#define CTL_DEFAULT_SOCKET  "/run/meshshim/helperd.sock"

#endif
