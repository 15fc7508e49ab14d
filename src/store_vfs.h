/*
 * store_vfs.h - the SQLite VFS kilnd opens its database through: the
 * default VFS, except that a connection's appends to its WAL are gathered
 * and written once per commit (store_vfs.c says why and when).  Private
 * to the store.
 */
#ifndef KILN_STORE_VFS_H
#define KILN_STORE_VFS_H

#define KILN_STORE_VFS "kiln-wal"

/* Registers KILN_STORE_VFS over the VFS that is the default now (once;
 * later calls only return the first one's result).  Returns an SQLite
 * result code. */
int kiln_store_vfs_register(void);

#endif
