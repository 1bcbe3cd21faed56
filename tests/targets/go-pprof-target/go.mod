module cinder.dev/go-pprof-target

go 1.19
