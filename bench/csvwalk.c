/* csvwalk: the parse-only baseline for the pmtatail benchmark.
 *
 * Reads a file with read(2) in 64 KiB chunks and walks it with libcsv, with
 * callbacks that only count fields and rows. This is the floor for any
 * libcsv-based reader: pmtatail's own replay does the same walk plus header
 * mapping, filtering and JSON encoding, and bench/run.sh compares the two.
 *
 * Usage: csvwalk FILE
 * Prints: rows=N fields=N   (the header line counts as a row) */
#include <csv.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK_SIZE (64 * 1024)

struct counts {
        unsigned long long rows;
        unsigned long long fields;
};

static void on_field(void *data, size_t len, void *arg)
{
        struct counts *c = arg;
        (void)data;
        (void)len;
        c->fields++;
}

static void on_row(int term, void *arg)
{
        struct counts *c = arg;
        (void)term;
        c->rows++;
}

/* Never treat a byte as trimmable space: keep fields byte-exact. */
static int no_space(unsigned char ch)
{
        (void)ch;
        return 0;
}

int main(int argc, char **argv)
{
        static char buf[CHUNK_SIZE];
        struct csv_parser parser;
        struct counts c = {0, 0};
        int fd;
        int rc = EXIT_SUCCESS;

        if (argc != 2) {
                fprintf(stderr, "usage: %s FILE\n", argv[0]);
                return 2;
        }
        fd = open(argv[1], O_RDONLY);
        if (fd < 0) {
                fprintf(stderr, "csvwalk: %s: %s\n", argv[1], strerror(errno));
                return EXIT_FAILURE;
        }
        if (csv_init(&parser, 0) != 0) {
                fprintf(stderr, "csvwalk: csv_init failed\n");
                close(fd);
                return EXIT_FAILURE;
        }
        csv_set_space_func(&parser, no_space);

        for (;;) {
                ssize_t n = read(fd, buf, sizeof buf);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        fprintf(stderr, "csvwalk: read %s: %s\n", argv[1], strerror(errno));
                        rc = EXIT_FAILURE;
                        break;
                }
                if (n == 0)
                        break;
                if (csv_parse(&parser, buf, (size_t)n, on_field, on_row, &c) != (size_t)n) {
                        fprintf(stderr, "csvwalk: %s: %s\n", argv[1],
                                csv_strerror(csv_error(&parser)));
                        rc = EXIT_FAILURE;
                        break;
                }
        }
        if (rc == EXIT_SUCCESS && csv_fini(&parser, on_field, on_row, &c) != 0) {
                fprintf(stderr, "csvwalk: %s: %s\n", argv[1], csv_strerror(csv_error(&parser)));
                rc = EXIT_FAILURE;
        }
        csv_free(&parser);
        close(fd);
        if (rc == EXIT_SUCCESS)
                printf("rows=%llu fields=%llu\n", c.rows, c.fields);
        return rc;
}
