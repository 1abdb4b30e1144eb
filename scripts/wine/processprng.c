/*
 * ProcessPrng shim for Wine 8.0.
 *
 * Rust's standard library for x86_64-pc-windows-gnu imports ProcessPrng from
 * bcryptprimitives.dll, which Wine 8.0 does not ship, so every Rust program
 * fails to start.  This DLL provides that one export and fills the buffer
 * through advapi32's SystemFunction036 (RtlGenRandom).  scripts/wine-test.sh
 * builds it and installs it into the Wine prefix as bcryptprimitives.dll.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG len);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
