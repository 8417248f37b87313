# A server and its clients, in the NixOS test driver's dialect.
start_all()
server.wait_for_unit("httpd")
server.wait_for_open_port(80)

clients = [client1, client2]
t.assertEqual(len(machines), 3)
t.assertEqual([v.nr for v in vlans], [1])

for client in clients:
    with subtest(f"{client.name} fetches the page by the server's name"):
        client.wait_until_succeeds("wget -qO- http://server/ | grep -q 'hello, clients'")

with subtest("a client cut off from the network fails, and recovers"):
    client2.block()
    client2.fail("timeout 3 wget -qO- http://server/")  # busybox wget -T crashes: timeout bounds it
    client1.succeed("wget -qO- http://server/")
    client2.unblock()
    client2.wait_until_succeeds("timeout 3 wget -qO- http://server/", timeout=60)

with subtest("the machines see each other's addresses"):
    out = client1.succeed("cat /etc/hosts")
    for name in ("server", "client1", "client2"):
        assert name in out, out
    assert client1.is_up()

client1.shutdown()
client2.shutdown()
assert not client1.is_up()
