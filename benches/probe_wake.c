/* Cross-process wake-up latency of a futex, a pipe, a Unix socket and an eventfd:
 * the kernel floor under produce-to-consume latency. See docs/BENCHMARKS.md,
 * "The limits revisited". Build and run:  cc -O2 -o /tmp/probe_wake benches/probe_wake.c && for m in futex pipe sock eventfd; do /tmp/probe_wake $m; done
 * A second argument "pinned" puts the writer on CPU 0 and the reader on CPU 1: the
 * cost of waking a task on another (idle) vCPU, which the scheduler otherwise avoids. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <sched.h>
#include <sys/socket.h>
#include <linux/futex.h>
static int64_t now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1000000000LL+t.tv_nsec;}
struct shm { volatile uint32_t seq; volatile int64_t stamp; int64_t lat[4000]; };
static int cmp(const void*a,const void*b){int64_t x=*(int64_t*)a,y=*(int64_t*)b;return x<y?-1:x>y;}
int main(int argc,char**argv){
  const char* mode=argv[1]; int N=3000;
  struct shm* s=mmap(0,sizeof *s,PROT_READ|PROT_WRITE,MAP_SHARED|MAP_ANONYMOUS,-1,0);
  int p[2]; int sv[2]; pipe(p); socketpair(AF_UNIX,SOCK_STREAM,0,sv); int efd=eventfd(0,0);
  int pinned=argc>2&&!strcmp(argv[2],"pinned");
  cpu_set_t cpus;
  pid_t c=fork();
  if(pinned){ CPU_ZERO(&cpus); CPU_SET(c?0:1,&cpus); sched_setaffinity(0,sizeof cpus,&cpus); }
  if(!c){
    for(int i=0;i<N;i++){
      if(!strcmp(mode,"futex")){ uint32_t seen=i; while(s->seq==seen) syscall(SYS_futex,&s->seq,FUTEX_WAIT,seen,0,0,0); }
      else if(!strcmp(mode,"pipe")){ char b; read(p[0],&b,1);} 
      else if(!strcmp(mode,"sock")){ char b; read(sv[1],&b,1);} 
      else { uint64_t v; read(efd,&v,8);} 
      s->lat[i]=now()-s->stamp;
    }
    _exit(0);
  }
  usleep(100000);
  for(int i=0;i<N;i++){
    usleep(500);
    s->stamp=now();
    if(!strcmp(mode,"futex")){ __atomic_add_fetch(&s->seq,1,__ATOMIC_SEQ_CST); syscall(SYS_futex,&s->seq,FUTEX_WAKE,1,0,0,0);} 
    else if(!strcmp(mode,"pipe")) write(p[1],"x",1);
    else if(!strcmp(mode,"sock")) write(sv[0],"x",1);
    else { uint64_t v=1; write(efd,&v,8);} 
  }
  waitpid(c,0,0);
  qsort(s->lat,N,8,cmp);
  if(pinned) printf("pinned ");
  printf("%-6s p50 %.1f us p99 %.1f us\n",mode,s->lat[N/2]/1e3,s->lat[N*99/100]/1e3);
}
