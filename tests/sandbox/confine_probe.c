/* A static probe COPYed into a build context: tries one thing a RUN must not be able to do.
 *
 *   probe add_key DESC    add a "user" key to the caller's user keyring (the host root's, without seccomp)
 *   probe keyctl          look up the caller's user keyring
 *   probe packet          socket(AF_PACKET, SOCK_RAW): sniff every frame on the host network
 *   probe raw             socket(AF_INET, SOCK_RAW, ICMP)
 *   probe fork MAX        fork children (each blocks on a pipe) until fork fails or MAX are alive
 *
 * It prints "DENIED <what>: <strerror> (errno N)" and exits 1 when the attempt fails, so the RUN step fails
 * inside the sandbox; "ALLOWED <what>" and exit 0 when it succeeds. "fork" prints "BOUNDED fork: N
 * children: <strerror>" (exit 1) or "UNBOUNDED fork: N children" (exit 0); every child exits before the
 * probe does.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define KEY_SPEC_USER_KEYRING (-4)
#define KEYCTL_GET_KEYRING_ID 0

static int denied(const char *what) {
    int e = errno;
    printf("DENIED %s: %s (errno %d)\n", what, strerror(e), e);
    return 1;
}

static int forks(long max) {
    int p[2];
    long n = 0;
    int err = 0;
    if (pipe(p) != 0)
        return denied("pipe");
    fflush(stdout);
    while (n < max) {
        pid_t pid = fork();
        if (pid < 0) {
            err = errno;
            break;
        }
        if (pid == 0) {
            char c;
            close(p[1]);
            while (read(p[0], &c, 1) < 0 && errno == EINTR)
                ;
            _exit(0);
        }
        n++;
    }
    close(p[1]); /* every child sees EOF and exits */
    while (wait(NULL) > 0 || errno == EINTR)
        ;
    if (err) {
        printf("BOUNDED fork: %ld children: %s (errno %d)\n", n, strerror(err), err);
        return 1;
    }
    printf("UNBOUNDED fork: %ld children\n", n);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 3 && strcmp(argv[1], "add_key") == 0) {
        long id = syscall(SYS_add_key, "user", argv[2], "idpbuilder-probe", 16, KEY_SPEC_USER_KEYRING);
        if (id < 0)
            return denied("add_key");
        printf("ALLOWED add_key: key %ld\n", id);
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "keyctl") == 0) {
        long id = syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 0);
        if (id < 0)
            return denied("keyctl");
        printf("ALLOWED keyctl: keyring %ld\n", id);
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "packet") == 0) {
        int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
        if (fd < 0)
            return denied("packet socket");
        printf("ALLOWED packet socket\n");
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "raw") == 0) {
        int fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
        if (fd < 0)
            return denied("raw socket");
        printf("ALLOWED raw socket\n");
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "fork") == 0)
        return forks(atol(argv[2]));
    fprintf(stderr, "usage: %s add_key DESC | keyctl | packet | raw | fork MAX\n", argv[0]);
    return 2;
}
