package capture

//go:generate go tool bpf2go -tags linux -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel -type event -type conn_info -type path_prefix -type counter -type event_kind -type event_flag -type event_source -type role -type direction -type tls_key -type verdict_value -type go_offsets -type notice observer ../../bpf/observer.c -- -I../../bpf
