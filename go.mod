module github.com/shakedown-dev/shakedown

go 1.26.0

require (
	github.com/creack/pty v1.1.24
	github.com/klauspost/compress v1.18.0
	github.com/pkg/sftp v1.13.12
	github.com/ulikunitz/xz v0.5.17
	github.com/vishvananda/netlink v1.3.1
	github.com/xi2/xz v0.0.0-20171230120015-48954b6210f8
	golang.org/x/crypto v0.59.0
	golang.org/x/sys v0.50.0
	pault.ag/go/debian v0.19.0
)

require (
	github.com/gopacket/gopacket v1.7.7 // indirect
	github.com/kr/fs v0.1.0 // indirect
	github.com/vishvananda/netns v0.0.5 // indirect
	go.starlark.net v0.0.0-20260908191801-89a6a09411d5 // indirect
	golang.org/x/net v0.62.0 // indirect
)
