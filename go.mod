module github.com/tunnels/tunnels

go 1.26
