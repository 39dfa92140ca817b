// A client the shim cannot reach: built with CGO_ENABLED=0 it is a
// static binary that makes its own syscalls and resolves names with Go's
// own DNS client, pointed at helperd's DNS server.
//
//	client -dns 127.0.0.1:PORT -name socat.service.mesh [-port N] [-hold]
//
// Without -port the port comes from the name's SRV record. It sends one
// line and prints the echo; with -hold it then sends a line every 100 ms
// until the connection is cut, and prints "cut at <unix time>".
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

func main() {
	dns := flag.String("dns", "127.0.0.1:8600", "DNS server ip:port")
	name := flag.String("name", "", "service name to resolve")
	port := flag.Int("port", 0, "port (0: from SRV)")
	hold := flag.Bool("hold", false, "keep talking until cut")
	flag.Parse()

	r := &net.Resolver{PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", *dns)
		}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addrs, err := r.LookupHost(ctx, *name)
	if err != nil || len(addrs) == 0 {
		fmt.Println("resolve:", err)
		os.Exit(2)
	}
	if *port == 0 {
		_, srvs, err := r.LookupSRV(ctx, "", "", *name)
		if err != nil || len(srvs) == 0 {
			fmt.Println("srv:", err)
			os.Exit(2)
		}
		*port = int(srvs[0].Port)
	}
	target := net.JoinHostPort(addrs[0], strconv.Itoa(*port))
	c, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		fmt.Println("connect:", err)
		os.Exit(1)
	}
	fmt.Println("connected", target)
	rd := bufio.NewReader(c)
	talk := func(msg string) error {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(c, "%s\n", msg); err != nil {
			return err
		}
		line, err := rd.ReadString('\n')
		if err != nil {
			return err
		}
		if line != msg+"\n" {
			return fmt.Errorf("echo %q", line)
		}
		return nil
	}
	if err := talk("hello-from-go"); err != nil {
		fmt.Println("echo failed:", err)
		os.Exit(1)
	}
	fmt.Println("echo: hello-from-go")
	if !*hold {
		return
	}
	for i := 0; ; i++ {
		if err := talk(fmt.Sprintf("ping-%d", i)); err != nil {
			fmt.Printf("cut at %.3f: %v\n",
				float64(time.Now().UnixNano())/1e9, err)
			os.Exit(3)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
