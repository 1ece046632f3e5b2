/* udiff — a unified diff of two texts, for dry runs and step results.
 *
 * Contract: udiff returns the diff of old -> new in unified format
 * ("--- OLD_NAME", "+++ NEW_NAME", "@@ -a,b +c,d @@" hunks with three lines
 * of context, "\ No newline at end of file" where a side lacks its last
 * newline), malloc'd, caller frees; "" when the texts are equal. Lines are
 * compared byte for byte (a CR stays part of its line). The longest common
 * subsequence is exact up to UDIFF_MAX_CELLS line pairs; beyond that (files
 * far larger than any boot config) the changed middle is shown as one hunk
 * removing the old lines and adding the new ones, which is still a correct
 * diff. Never fails; allocation failure aborts (buf.h). */
#ifndef PCIFLEET_UDIFF_H
#define PCIFLEET_UDIFF_H

#include <stddef.h>

#define UDIFF_MAX_CELLS (4u * 1024 * 1024)

char *udiff(const char *old_name, const char *old, size_t old_len, const char *new_name, const char *new_text,
            size_t new_len);

#endif
